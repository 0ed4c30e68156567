from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from coursekit import ASSIGNMENT, COURSE_ID, cli
from coursekit.course.directory import Course, CourseError, nbgrader_executable

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


# ---- pytest-xdist (`make test` runs two workers): what is costly is built once per run, not once per worker

# The test files that use a costly shared session fixture, and their group: a group runs on one worker, so the
# fixture is built once (the hostile cohort is the slowest thing `make test` does; its tests restore what they
# change, which is safe only when they do not run side by side). Every other file is a group of its own, so its
# module fixtures (a graded course, a Jupyter server) are built once too.
SHARED_FIXTURES = {"hostile": "hostile", "exchange_course": "exchange"}
GROUPS = {"tests/test_adversarial.py": "hostile", "tests/test_lifetime.py": "hostile",
          "tests/browser/test_active_content.py": "hostile",
          "tests/test_exchange.py": "exchange", "tests/browser/test_release_feedback.py": "exchange"}
FIRST = "hostile"  # the longest group starts first, so no worker waits for it at the end


def _group(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return GROUPS.get(path, path)


@pytest.hookimpl(optionalhook=True)  # `-p no:xdist` has no such hook
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """xdist's `loadgroup` cannot read groups under pytest 9 (it rewrites `item._nodeid`, which pytest 9 no longer
    reads), so the groups are scheduled here: xdist's `loadscope` with GROUPS as the scopes."""
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid)

    config.option.loadscopereorder = False  # the order is ours: pytest_collection_modifyitems
    return ByGroup(config, log)


def _uses_shared(item: pytest.Item, fixture: str) -> bool:
    """Whether `item` uses this file's session fixture `fixture` (a test file may have its own of that name)."""
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.get(fixture, ()) if info is not None else ()
    return bool(definitions) and getattr(definitions[-1].func, "__module__", "") == __name__  # [-1]: the one used


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The FIRST group first; and a file that uses a shared fixture without being in its group is an error (it
    would build the fixture on a second worker, or change files another worker's test reads)."""
    for item in items:
        for fixture, group in SHARED_FIXTURES.items():
            if _uses_shared(item, fixture) and _group(item.nodeid) != group:
                raise pytest.UsageError(f"{item.nodeid} uses the fixture {fixture!r}: add its file to GROUPS "
                                        f"in tests/conftest.py as {group!r}")
    items.sort(key=lambda item: _group(item.nodeid) != FIRST)  # stable: otherwise the collection order


def once_per_run(tmp_path_factory: pytest.TempPathFactory, name: str,
                 build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """`build(folder)` once per test run, its JSON record shared by every xdist worker: the first worker to ask builds
    in the run's shared temp folder while the others wait on a lock, then read the record (or its failure)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return build(tmp_path_factory.mktemp(name))
    folder = tmp_path_factory.getbasetemp().parent / name
    record = folder.with_suffix(".json")
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            folder.mkdir()
            try:
                made: dict[str, Any] = build(folder)
            except BaseException as exc:
                record.write_text(json.dumps({"failed": f"{type(exc).__name__}: {exc}"}))
                raise
            record.write_text(json.dumps(made))
    made = json.loads(record.read_text())
    if "failed" in made:
        pytest.fail(f"{name}, built by another xdist worker, failed: {made['failed']}", pytrace=False)
    return made


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Course, dict[str, str], dict[str, str]]:
    """The demo run (`coursekit demo`, plus the source and the blank release as two more students) in a course
    in use: released, with a submission of its own and an export. (demo course, course before, course after)"""

    def build(folder: Path) -> dict[str, Any]:
        course = copy_course(folder / "course")
        course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
        course.submit("real_student", course.source_notebook)
        (course.root / "grades.csv").write_text("the course's own export\n")
        before = _snapshot(course.root)
        extra = {student: course.source_notebook if kind == "source" else course.release_notebook
                 for student, kind in EXTRA_STUDENTS.items()}
        demo = cli.run_demo(course, extra)
        return {"demo": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(demo).items()},
                "before": before, "after": _snapshot(course.root)}

    made = once_per_run(tmp_path_factory, "demo-run", build)
    demo = Course(**{**made["demo"], "root": Path(made["demo"]["root"])})
    return demo, made["before"], made["after"]


@pytest.fixture(scope="session")
def graded(demo_run: tuple[Course, dict[str, str], dict[str, str]]) -> Course:
    """The demo course, graded once per test session: released, graded, feedback and grades.csv written, for the
    32 demo students plus `EXTRA_STUDENTS`. Shared by every test that needs a graded class: read it, never
    change it (copy it with `graded.scratch_copy(tmp_path)` first, or grade a course of your own)."""
    return demo_run[0]


# ---- course-ops: the graded demo, copied, where one student also submitted through nbgrader's exchange
EXCHANGE_STUDENT = "correct_reference"


def full_copy(course: Course, target: Path) -> Course:
    """Everything in `course` (submissions, grades, feedback, gradebook, exchange), copied to `target`.

    nbgrader_config.py finds the course, its gradebook and its exchange next to itself, so the copy is a course
    of its own.
    """
    shutil.copytree(course.root, target, symlinks=True)
    return Course(target)


@dataclass(frozen=True)
class ExchangeCourse:
    """A graded course whose student EXCHANGE_STUDENT fetched, submitted (`nbgrader submit`), was collected and
    regraded (`coursekit grade --student`): their submission carries nbgrader's submission_secret.txt."""

    course: Course
    student_home: Path  # the student's own folder: fetch_assignment, submit and fetch_feedback work there
    student_jupyter: Path  # the student's Jupyter folders, and nbgrader's cache in them

    @property
    def exchange(self) -> Path:
        return self.course.root / "exchange"

    def student(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`nbgrader ARGS` as the student, in their folder: none of the course's config, their own cache."""
        env = {k: v for k, v in self.course.environment().items() if not k.startswith(("JUPYTER", "COURSEKIT"))}
        env.update(JUPYTER_CONFIG_DIR=str(self.student_jupyter / "config"),
                   JUPYTER_DATA_DIR=str(self.student_jupyter / "data"))
        result = subprocess.run(
            [nbgrader_executable(), *args, f"--CourseDirectory.course_id={COURSE_ID}",
             f"--Exchange.root={self.exchange}", f"--Exchange.cache={self.student_jupyter / 'cache'}",
             f"--CourseDirectory.student_id={EXCHANGE_STUDENT}"],
            cwd=self.student_home, env=env, text=True, capture_output=True, timeout=300, check=False,
        )
        assert result.returncode == 0, f"nbgrader {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def copy(self, target: Path) -> ExchangeCourse:
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.student_home, target / "student", symlinks=True)
        shutil.copytree(self.student_jupyter, target / "student-jupyter", symlinks=True)
        return ExchangeCourse(full_copy(self.course, target / "course"), target / "student", target / "student-jupyter")


@pytest.fixture(scope="session")
def exchange_course(graded: Course, tmp_path_factory: pytest.TempPathFactory) -> ExchangeCourse:
    """Built once per session from a copy of `graded` (never changed). Copy it (`.copy(tmp_path)`) to change it."""
    base = tmp_path_factory.mktemp("exchange-course")
    for folder in ("student", "student-jupyter"):
        (base / folder).mkdir()
    made = ExchangeCourse(full_copy(graded, base / "course"), base / "student", base / "student-jupyter")
    course = made.course
    course.nbgrader("release_assignment", ASSIGNMENT, quiet=True)
    made.student("fetch_assignment", ASSIGNMENT)
    # The student's work: the demo cohort's notebook for them, saved over the fetched release.
    shutil.copyfile(course.demo_notebook(EXCHANGE_STUDENT), made.student_home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    made.student("submit", ASSIGNMENT)
    course.nbgrader("collect", "--update", ASSIGNMENT, quiet=True)
    assert cli.main(["grade", f"--student={EXCHANGE_STUDENT}"], course=course) == 0
    return made
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


