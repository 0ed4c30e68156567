"""The warm-kernel pieces that need no kernel: the kernelspec and the process handle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coursekit.warm_kernels import PROVISIONER, ForkedKernelProcess, WarmKernelError, WarmProvisioner, warm_kernelspec


def test_kernelspec_names_the_provisioner_and_this_python(tmp_path: Path) -> None:
    spec = json.loads((warm_kernelspec(tmp_path) / "kernels" / "python3" / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == PROVISIONER
    assert spec["argv"][0] == sys.executable and "{connection_file}" in spec["argv"]


def test_forked_process_handle_sees_the_end_of_a_process_it_did_not_start() -> None:
    # A grandchild, as a warm kernel is to nbgrader: started by another process, ended by a signal.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    handle = ForkedKernelProcess(sleeper.pid)
    assert handle.poll() is None
    handle.terminate()
    sleeper.wait(timeout=10)
    assert handle.wait(timeout=10) == 0
    assert handle.poll() == 0


def test_provisioner_without_a_parent_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    monkeypatch.delenv("COURSEKIT_WARM_SOCKET", raising=False)
    with pytest.raises(WarmKernelError, match="coursekit grade does"):
        asyncio.run(WarmProvisioner(kernel_id="k", kernel_spec=None, parent=None).launch_kernel(["python"]))
