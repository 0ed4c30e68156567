"""No process of the kit outlives a run: not after a finished run, nor after a grader killed with kill -9.

Kernels are forked from a warm parent and a student can start processes that leave the kernel's session (setsid,
double fork) and clear the kernel's own parent-death signal. This machine is shared with other test runs, so this
run's processes are found by its own temp folder, which every one of them carries: the warm parent and kernels in
their command line (the warm parent's socket), the students' daemons in their name (catalog: `background_daemons`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from coursekit import ASSIGNMENT
from coursekit.kernels import sandbox

from .adversarial.catalog import DAEMONS, LOSS, Hostile, _first_in_train
from .conftest import copy_course

pytestmark = pytest.mark.slow

DAEMON = "coursekit-daemon:"


def _processes(tmp: str) -> dict[int, tuple[int, str]]:
    """pid -> (uid, command line) of every process whose command line names `tmp`."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if tmp in cmdline:
                found[int(proc.name)] = (proc.stat().st_uid, cmdline)
        except OSError:
            continue
    return found


def _by_uid(uids: set[int]) -> list[int]:
    left = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and proc.stat().st_uid in uids:
                left.append(int(proc.name))
        except OSError:
            continue
    return left


class Watcher:
    """Records the sandbox uids of this run's kernels while it runs: what they start is found by uid too."""

    def __init__(self, tmp: str) -> None:
        self.tmp, self.uids, self.daemons, self._stop = tmp, set[int](), 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            found = _processes(self.tmp)
            self.uids |= {uid for uid, _ in found.values() if uid >= sandbox.SANDBOX_UID_BASE}
            self.daemons = max(self.daemons, sum(DAEMON in cmdline for _, cmdline in found.values()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _left(tmp: str, uids: set[int], seconds: float = 10) -> list[str]:
    deadline = time.monotonic() + seconds
    while True:
        left = [cmdline for _, cmdline in _processes(tmp).values()] + [f"uid {pid}" for pid in _by_uid(uids)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str]]:
    """A course with an honest student and one who starts daemons, and the run's own (short) temp folder."""
    course = copy_course(tmp_path / "course")
    course.submit("correct_reference", course.demo_notebook("correct_reference"))
    release = nbformat.read(course.release_notebook, as_version=4)
    hostile = Hostile("daemons", "daemons, then train hangs", loses=(), loss=LOSS + "\n" + DAEMONS,
                      train=_first_in_train("  import time\n  time.sleep(10**6)"))
    path = course.submitted_notebook(hostile.student_id)
    path.parent.mkdir(parents=True)
    path.write_bytes(hostile.build(release) or b"")
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
    tmp = tempfile.mkdtemp(prefix="cklife-", dir="/tmp")
    env = {**course.environment(), "TMPDIR": tmp, "COURSEKIT_CELL_TIMEOUT": "4",
           "COURSEKIT_SUBMISSION_DEADLINE": "60"}
    yield course.root, env, tmp
    for pid in _processes(tmp):  # never left to the next test, whatever this one found
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(tmp, ignore_errors=True)  # what a killed grader leaves: its scratch courses, the warm folder


def test_a_finished_run_leaves_no_process(run: tuple[Path, dict[str, str], str]) -> None:
    root, env, tmp = run
    watcher = Watcher(tmp)
    result = subprocess.run([sys.executable, "-m", "coursekit.cli", "grade", "--workers", "1"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    watcher.stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Two daemons in the kernel, and two more wherever a probe child replays the same cell
    # (coursekit/kernels/probe_child.py).
    assert watcher.daemons >= 2 and watcher.uids, "the daemons never ran: the test proves nothing"
    assert not _left(tmp, watcher.uids)


def test_a_grader_killed_with_kill_9_leaves_no_process(run: tuple[Path, dict[str, str], str]) -> None:
    root, env, tmp = run
    watcher = Watcher(tmp)
    grader = subprocess.Popen([sys.executable, "-m", "coursekit.cli", "grade", "--workers", "1"], cwd=root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while watcher.daemons < 2 and grader.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert watcher.daemons >= 2 and grader.poll() is None, "no daemon was running when the grader was killed"
    os.killpg(grader.pid, signal.SIGKILL)
    grader.wait()
    watcher.stop()
    assert not _left(tmp, watcher.uids)
