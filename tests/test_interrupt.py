"""Ctrl-C during `coursekit grade`: prompt exit, nothing left running or on disk, finished grades kept."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import nbformat
import psutil
import pytest

from coursekit import ASSIGNMENT
from coursekit.course import cohort
from coursekit.course.directory import Course
from coursekit.exports import scores

from .conftest import copy_course

pytestmark = pytest.mark.slow

STUDENTS = ["correct_reference", "loss_sum", "model_no_bias", "train_global_model", "correct_tf_module",
            "loss_abs", "train_only_w", "model_swapped_call"]
COURSEKIT = str(Path(sys.executable).with_name("coursekit"))


def _ours(marker: str) -> list[psutil.Process]:
    """Every process whose environment carries `marker`: all that `coursekit grade` started, orphans too."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("COURSEKIT_TEST_RUN") == marker:
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_ctrl_c_stops_cleanly_keeps_finished_grades_and_a_rerun_grades_the_rest(tmp_path: Path) -> None:
    course = copy_course(tmp_path / "course")
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
    for student in STUDENTS:
        course.submit(student, course.demo_notebook(student))
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    marker = uuid.uuid4().hex
    env = {**Course(course.root).environment(), "TMPDIR": str(private_tmp), "COURSEKIT_TEST_RUN": marker}

    # Its own process group, sent SIGINT as a whole: what a terminal does on Ctrl-C.
    grading = subprocess.Popen(
        [COURSEKIT, "grade", "--workers", "2", "--chunk", "2"], cwd=course.root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    lines: list[str] = []
    first_grade = threading.Event()

    def read() -> None:
        assert grading.stdout is not None
        for line in grading.stdout:
            lines.append(line)
            found = re.search(r"\((\d+) graded", line)
            if found and int(found[1]) > 0:
                first_grade.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert first_grade.wait(timeout=240), f"no grade recorded in time:\n{''.join(lines)}"
    assert grading.poll() is None, "the run ended before it could be interrupted: grade more students"
    os.killpg(grading.pid, signal.SIGINT)
    interrupted_at = time.monotonic()
    try:
        grading.wait(timeout=60)
    finally:
        if grading.poll() is None:
            os.killpg(grading.pid, signal.SIGKILL)
    stopped_in = time.monotonic() - interrupted_at
    reader.join(timeout=10)
    assert grading.stderr is not None
    err = grading.stderr.read()
    out = "".join(lines)

    assert grading.returncode == 130, (out, err)
    assert stopped_in < 30, f"took {stopped_in:.0f} s to stop"
    assert "Run `make grade` again to grade the rest" in err, err
    deadline = time.monotonic() + 10  # the kernel of a killed nbgrader may take a moment to die
    while _ours(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _ours(marker), [p.cmdline() for p in _ours(marker)]
    assert list(private_tmp.iterdir()) == [], "temporary folders left behind"

    kept = scores.cell_scores(course.db_url)
    assert 0 < len(kept) < len(STUDENTS), out
    expected = cohort.expected_scores(scores.max_cell_points(course.db_url))
    assert kept == {student: expected[student] for student in kept}
    graded_before = {s: course.autograded.joinpath(s, ASSIGNMENT, f"{ASSIGNMENT}.ipynb").stat().st_mtime_ns
                     for s in kept}

    rerun = subprocess.run([COURSEKIT, "grade", "--workers", "2"], cwd=course.root, env=env,
                           capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"grading {len(STUDENTS) - len(kept)} submissions" in rerun.stdout, rerun.stdout
    final = scores.cell_scores(course.db_url)
    assert final == {student: expected[student] for student in STUDENTS}
    for student, mtime in graded_before.items():  # graded exactly once: the rerun left these alone
        path = course.autograded / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert path.stat().st_mtime_ns == mtime, student
        assert nbformat.read(path, as_version=4).cells
    assert not _ours(marker)
    assert list(private_tmp.iterdir()) == []
