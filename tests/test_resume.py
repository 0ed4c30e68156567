"""A grader killed half-way (kill -9): a rerun finishes the cohort, nothing lost or duplicated."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from coursekit import ASSIGNMENT
from coursekit.course import cohort
from coursekit.course.directory import Course
from coursekit.engine import completion
from coursekit.exports import scores

from .conftest import copy_course

pytestmark = pytest.mark.slow

STUDENTS = [s.student_id for s in cohort.STUDENTS[::5]]  # 7 students: correct, and wrong in each part


def _start(course: Course) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "coursekit.cli", "grade", "--workers", "2"], cwd=course.root,
        env=course.environment(), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so one killpg reaches every process it started
    )


def _graded(course: Course) -> set[str]:
    try:
        return completion.completely_graded(course, STUDENTS)
    except Exception:  # the gradebook may not exist yet, or be mid-migration
        return set()


def test_a_rerun_after_kill_9_finishes_the_cohort(tmp_path) -> None:
    course = copy_course(tmp_path)
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
    for student in STUDENTS:
        course.submit(student, course.demo_notebook(student))

    grader = _start(course)
    deadline = time.monotonic() + 600
    while not _graded(course) and grader.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert grader.poll() is None, "the grader ended before it could be killed half-way: grow the cohort"
    os.killpg(grader.pid, signal.SIGKILL)
    grader.wait()
    graded_before = _graded(course)
    assert 0 < len(graded_before) < len(STUDENTS)

    rerun = subprocess.run(
        [sys.executable, "-m", "coursekit.cli", "grade"], cwd=course.root, env=course.environment(),
        text=True, capture_output=True, timeout=900, check=False,
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]

    maxima = scores.max_cell_points(course.db_url)
    expected = cohort.expected_scores(maxima)
    assert scores.cell_scores(course.db_url) == {s: expected[s] for s in STUDENTS}
    with sqlite3.connect(course.root / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        per_student = dict(db.execute(
            "SELECT student.id, COUNT(grade.id) FROM grade JOIN submitted_notebook ON grade.notebook_id = "
            "submitted_notebook.id JOIN submitted_assignment ON submitted_notebook.assignment_id = "
            "submitted_assignment.id JOIN student ON submitted_assignment.student_id = student.id "
            "GROUP BY student.id"
        ).fetchall())
    assert per_student == dict.fromkeys(STUDENTS, len(maxima)), "a grade is missing or duplicated"
