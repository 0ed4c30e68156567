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
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from coursekit import ASSIGNMENT

from .adversarial.catalog import DAEMONS, LOSS, Hostile, _first_in_train
from .conftest import HostileRun, copy_course
from .processes import Watcher, left, processes

pytestmark = pytest.mark.slow


@pytest.fixture
def run(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str]]:
    """A course with one student, who starts daemons and then hangs in train, and the run's own (short) temp
    folder. No honest student: nothing here is about grades, and each one costs the kill -9 run seconds."""
    course = copy_course(tmp_path / "course")
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
    for pid in processes(tmp):  # never left to the next test, whatever this one found
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(tmp, ignore_errors=True)  # what a killed grader leaves: its scratch courses, the warm folder


def test_a_finished_run_leaves_no_process(hostile: HostileRun) -> None:
    """The hostile cohort's run (tests/conftest.py): daemons that left the kernel's session (`background_daemons`,
    started again wherever a probe child replays the cell), runaway and crashing kernels; what was left of it was
    looked for as soon as it ended."""
    assert hostile.result.returncode == 0, hostile.result.stdout[-3000:] + hostile.result.stderr[-3000:]
    assert hostile.daemons >= 2 and hostile.uids, "the daemons never ran: the test proves nothing"
    assert not hostile.left


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
    assert not left(tmp, watcher.uids)
