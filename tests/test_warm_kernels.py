"""The warm-kernel pieces that need no kernel: the kernelspec and the process handle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coursekit.kernels.warm_kernels import (
    PROVISIONER,
    ForkedKernelProcess,
    WarmKernelError,
    WarmProvisioner,
    warm_kernelspec,
)


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


@pytest.mark.parametrize("planted", ["a link to another socket", "another process's socket", "a plain file"])
def test_sockets_that_are_not_the_kernels_own_are_refused(tmp_path: Path, planted: str) -> None:
    """nbgrader's side moves the kernel's sockets out of its folder before connecting: only the kernel's own pass."""
    import asyncio
    import os
    import socket

    from jupyter_client.manager import KernelManager

    from coursekit.kernels import sandbox

    if planted == "another process's socket" and not sandbox.really_root():
        pytest.skip("without root a kernel has the grader's uid: told apart from its sockets only as root")
    folder = tmp_path / "sockets" / "k"
    folder.mkdir(parents=True)
    km = KernelManager(transport="ipc", ip=str(folder / "kernel"))
    for index, name in enumerate(("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")):
        setattr(km, name, index + 1)
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(tmp_path / "fork.sock"))  # the warm parent's, say: not the kernel's
    for port in range(1, 6):
        path = folder / f"kernel-{port}"
        if planted == "a link to another socket":
            path.symlink_to(tmp_path / "fork.sock")
        elif planted == "another process's socket":
            os.link(tmp_path / "fork.sock", path)
        else:
            path.write_text("x")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    provisioner = WarmProvisioner(kernel_id="k", kernel_spec=None, parent=km, socket_path=str(tmp_path / "fork.sock"))
    provisioner.sockets, provisioner.pid = str(folder), sleeper.pid
    provisioner.process = ForkedKernelProcess(sleeper.pid)
    assert asyncio.run(provisioner._until_bound(timeout=5))
    with pytest.raises(WarmKernelError, match="did not bind its own socket"):
        provisioner._take_sockets()
    assert sleeper.wait(timeout=10) != 0  # the kernel is killed: its start fails, before any student code ran
    assert km.ip == str(folder / "kernel")  # and nothing connects to what was planted
    other.close()
