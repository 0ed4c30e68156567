from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from coursekit import ASSIGNMENT, cli
from coursekit.course.directory import Course

REPO = Path(__file__).resolve().parents[1]
EXTRA_STUDENTS = {"instructor_source": "source", "blank_release": "release"}


def copy_course(target: Path) -> Course:
    """A scratch copy of the course directory, so tests never touch the repo's gradebook or outputs."""
    return Course(REPO).scratch_copy(target)


@pytest.fixture
def repo_course() -> Course:
    return Course(REPO)


def _snapshot(root: Path) -> dict[str, str]:
    """Every file of the course but the demo's own folder, and its content's hash."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and cli.DEMO_COURSE not in p.relative_to(root).parts}


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Course, dict[str, str], dict[str, str]]:
    """The demo run (`coursekit demo`, plus the source and the blank release as two more students) in a course
    in use: released, with a submission of its own and an export. (demo course, course before, course after)"""
    course = copy_course(tmp_path_factory.mktemp("course"))
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
    course.submit("real_student", course.source_notebook)
    (course.root / "grades.csv").write_text("the course's own export\n")
    before = _snapshot(course.root)
    extra = {student: course.source_notebook if kind == "source" else course.release_notebook
             for student, kind in EXTRA_STUDENTS.items()}
    demo = cli.run_demo(course, extra)
    return demo, before, _snapshot(course.root)


@pytest.fixture(scope="session")
def graded(demo_run: tuple[Course, dict[str, str], dict[str, str]]) -> Course:
    """The demo course, graded once per test session: released, graded, feedback and grades.csv written, for the
    30 demo students plus `EXTRA_STUDENTS`. Shared by every test that needs a graded class: read it, never
    change it (copy it with `graded.scratch_copy(tmp_path)` first, or grade a course of your own)."""
    return demo_run[0]
