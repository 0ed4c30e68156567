from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from coursekit import ASSIGNMENT, cli
from coursekit.course.directory import Course, CourseError

from . import processes

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


# ---------------------------------------------------------------- the hostile cohort

# Graded beside the hostile catalog; each must get exactly the grade it gets among honest students (`graded`).
HONEST = ("correct_reference", "correct_tf_module", "loss_abs", "train_only_w", "model_swapped_call")
# Small limits, so the runaway submissions cost seconds here, not the minutes a course allows.
LIMITS = {"COURSEKIT_CELL_TIMEOUT": "15", "COURSEKIT_SUBMISSION_DEADLINE": "90"}
# Planted in the grader's environment: none may reach a kernel, its output or its feedback.
SECRETS = {"PGPASSWORD": "planted-pg-password-4711", "AWS_SECRET_ACCESS_KEY": "planted-aws-key-0815",
           "COURSEKIT_KERNEL_SECRET_TOKEN": "planted-token-2342"}


@dataclass(frozen=True)
class HostileRun:
    """The hostile catalog and `HONEST`, graded once by `coursekit grade --workers 2`, and what the run left."""

    course: Course
    result: subprocess.CompletedProcess[str]
    tmp: str  # the run's own temp folder: its scratch courses, warm parent, kernels and their daemons name it
    daemons: int  # the most student daemons (catalog: `background_daemons`) seen alive at once during the run
    uids: frozenset[int]  # the sandbox uids its kernels ran under
    left: tuple[str, ...]  # its processes still alive once it had ended (looked for right then: uids get reused)
    feedback_error: str  # why `nbgrader generate_feedback` for the cohort failed; "" when it wrote every page


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> HostileRun:
    """Shared by tests/test_adversarial.py, tests/test_lifetime.py and tests/browser/test_active_content.py, so
    the cohort (the slowest thing `make test` does) is graded once, and its feedback generated once. Read it; a
    test that changes a file restores it, and a `STUDENT=` regrade must give the same grade
    (tests/test_adversarial.py)."""
    from .adversarial.catalog import CATALOG

    course = copy_course(tmp_path_factory.mktemp("hostile"))
    release = nbformat.read(course.release_notebook, as_version=4)
    for student in HONEST:
        course.submit(student, course.demo_notebook(student))
    for entry in CATALOG:
        content = entry.build(release)
        path = course.submitted_notebook(entry.student_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is not None:
            path.write_bytes(content)
        if entry.plant is not None:
            entry.plant(path.parent)
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
    # The run's own temp folder (short: kernels' socket paths live in it): its scratch courses, warm parent and
    # kernels, and whatever they start, are found by it (other runs share this machine).
    tmp = course.root / "tmp-folder"
    tmp.symlink_to(tempfile.mkdtemp(prefix="ckadv-", dir="/tmp"))
    watcher = processes.Watcher(str(tmp.resolve()))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "coursekit.cli", "grade", "--workers", "2"], cwd=course.root,
            env={**course.environment(), **LIMITS, **SECRETS, "TMPDIR": str(tmp.resolve())},
            text=True, capture_output=True, timeout=1800, check=False,
        )
    finally:
        watcher.stop()
    left = processes.left(watcher.tmp, watcher.uids)
    feedback_error = ""
    try:  # once for every test that reads the feedback pages
        course.nbgrader("generate_feedback", ASSIGNMENT, "--force", quiet=True)
    except CourseError as error:
        feedback_error = str(error)
    return HostileRun(course, result, watcher.tmp, watcher.daemons, frozenset(watcher.uids), tuple(left),
                      feedback_error)
