"""No route runs student code outside the sandbox: real nbgrader, real kernels, real gradebooks.

- The gradebook writer never executes: a submission whose bytes change after a worker executed it fails with
  its reason, nothing runs it, and the next run grades the new bytes in the sandbox.
- Plain `nbgrader autograde` and formgrader's Autograde (nbgrader's own API, as its button calls it) are refused
  with a message that points to `make grade`, before any kernel starts or any grade changes.
- `pytest grader_tests --notebook` runs a notebook in the sandbox; only `--trusted-notebook` runs it in-process.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

from coursekit import ASSIGNMENT
from coursekit.course import cohort
from coursekit.course.directory import Course, CourseError
from coursekit.engine import completion, grading, intake
from coursekit.engine.runners import LocalRunner
from coursekit.exports import scores

from .conftest import REPO, copy_course

pytestmark = pytest.mark.slow

LIMITS = {"COURSEKIT_CELL_TIMEOUT": "60", "COURSEKIT_SUBMISSION_DEADLINE": "300"}


def _outside_writer(paths: list[Path]) -> str:
    """Student code that leaves a file at each of `paths` (the course, the grader's home) if it can reach them."""
    return "\n".join([
        "import os as _os",
        f"for _path in {[str(p) for p in paths]!r}:",
        "    try:",
        "        with open(_path, 'w') as _f:",
        "            _f.write(str(_os.getuid()))",
        "    except OSError:",
        "        pass",
    ])


def _hostile(release: nbformat.NotebookNode, student: str, paths: list[Path], loss: str = cohort.LOSS) -> bytes:
    notebook = cohort.fill(release, cohort.Student(student, "writes outside its sandbox", cohort.MODEL
                                                   + "\n\n" + _outside_writer(paths), loss, cohort.TRAIN))
    return nbformat.writes(notebook).encode()


def _marks(course: Course) -> list[Path]:
    return [course.root / "OUTSIDE", course.root / "source" / "OUTSIDE", Path.home() / f"OUTSIDE-{course.root.name}"]


def _expected(course: Course, loses: tuple[str, ...] = ()) -> dict[str, float]:
    return {cell: 0.0 if cell in loses else points for cell, points in scores.max_cell_points(course.db_url).items()}


class _ChangingAfterExecution(LocalRunner):
    """A LocalRunner whose chunk holding `student` comes back only after that student's submission was replaced:
    the race between a worker's execution and the writer's read, made certain."""

    def __init__(self, slots: int, course: Course, student: str, replacement: bytes) -> None:
        super().__init__(slots)
        self.course, self.student, self.replacement = course, student, replacement
        self.changed = False

    def submit(self, notebooks: dict[str, bytes]) -> Any:
        future = super().submit(notebooks)
        if self.student not in notebooks:
            return future
        runner = self

        class Changed:
            def done(self) -> bool:
                return future.done()

            def cancel(self) -> bool:
                return future.cancel()

            def result(self) -> Any:
                results = future.result()
                # The writer reads intake's staged copy (engine/intake.py): change it there, and in submitted/,
                # where the next run takes it from.
                runner.course.submitted_notebook(runner.student).write_bytes(runner.replacement)
                intake.staged_notebook(runner.course, runner.student).write_bytes(runner.replacement)
                runner.changed = True
                return results

        return Changed()


def test_a_submission_changed_after_its_execution_fails_is_run_by_nobody_and_is_graded_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    course = copy_course(tmp_path / "course")
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
    release = nbformat.read(course.release_notebook, as_version=4)
    for student in ("ann", "bob"):
        course.submit(student, course.demo_notebook("correct_reference"))
    course.submit("cat", course.demo_notebook("correct_reference"))
    marks = _marks(course)
    # What the writer would find on disk: a wrong loss, and code that writes into the course if it runs outside.
    replacement = _hostile(release, "cat", marks, loss=cohort.LOSS.replace("reduce_mean", "reduce_sum"))
    runner = _ChangingAfterExecution(2, course, "cat", replacement)
    monkeypatch.setattr(grading, "runner_for", lambda scheduler, workers: runner)
    for name, value in LIMITS.items():
        monkeypatch.setenv(name, value)

    printed = io.StringIO()
    with pytest.raises(CourseError, match="1 of 3 submissions could not be graded"):
        grading.grade_course(course, force=False, workers=2, chunk=1, out=printed)
    out = printed.getvalue()
    assert runner.changed
    assert "cat" in out and "changed after it was read for execution" in out, out[-3000:]
    assert completion.completely_graded(course, ["ann", "bob", "cat"]) == {"ann", "bob"}
    assert not (course.autograded / "cat" / ASSIGNMENT).exists()  # nbgrader removes a failed one
    assert [m for m in marks if m.exists()] == []

    # The next run grades exactly the changed submission, in the sandbox: its wrong loss loses its check.
    result = subprocess.run([sys.executable, "-m", "coursekit.cli", "grade", "--workers", "2"], cwd=course.root,
                            env={**course.environment(), **LIMITS}, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "grading 1 submissions" in result.stdout
    got = scores.cell_scores(course.db_url)
    assert got["cat"] == _expected(course, loses=("test_loss_values",))
    assert got["ann"] == got["bob"] == _expected(course)
    assert [m for m in marks if m.exists()] == []


class _Children:
    """Every process started under `pid`, seen by polling while it runs."""

    def __init__(self, pid: int) -> None:
        self.seen: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(pid,), daemon=True)
        self._thread.start()

    def _watch(self, pid: int) -> None:
        try:
            parent = psutil.Process(pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            try:
                for child in parent.children(recursive=True):
                    try:
                        self.seen.setdefault(child.pid, " ".join(child.cmdline()))
                    except psutil.Error:
                        self.seen.setdefault(child.pid, "?")
            except psutil.Error:
                return
            time.sleep(0.01)

    def stop(self) -> dict[int, str]:
        self._stop.set()
        self._thread.join()
        return self.seen


@pytest.fixture(scope="module")
def refusal_course(tmp_path_factory: pytest.TempPathFactory) -> Course:
    """bob graded by the kit; ann submitted a notebook that writes into the course if anything runs it unsandboxed."""
    course = copy_course(tmp_path_factory.mktemp("refusal"))
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
    course.submit("bob", course.demo_notebook("loss_sqrt"))
    subprocess.run([sys.executable, "-m", "coursekit.cli", "grade", "--student", "bob"], cwd=course.root,
                   env={**course.environment(), **LIMITS}, capture_output=True, check=True)
    release = nbformat.read(course.release_notebook, as_version=4)
    path = course.submitted_notebook("ann")
    path.parent.mkdir(parents=True)
    path.write_bytes(_hostile(release, "ann", _marks(course)))
    return course


def _state(course: Course) -> tuple[Any, ...]:
    bob = course.autograded / "bob" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    return (scores.cell_scores(course.db_url), bob.read_bytes(), sorted(p.name for p in course.autograded.iterdir()))


@pytest.mark.parametrize("force", [False, True])
def test_plain_nbgrader_autograde_is_refused_before_any_kernel_or_grade(refusal_course: Course, force: bool) -> None:
    course = refusal_course
    before = _state(course)
    command = [str(Path(sys.executable).with_name("nbgrader")), "autograde", ASSIGNMENT, *(["--force"] * force)]
    process = subprocess.Popen(command, cwd=course.root, env=course.environment(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    watcher = _Children(process.pid)
    output, _ = process.communicate(timeout=300)
    children = watcher.stop()
    assert process.returncode == 1, output[-3000:]
    assert "Refusing to autograde" in output and "make grade" in output, output[-3000:]
    assert children == {}, children  # no kernel, no process of any kind
    assert "Sanitizing" not in output and "Executing" not in output
    assert _state(course) == before  # bob's grades and autograded notebook untouched, even with --force
    assert [m for m in _marks(course) if m.exists()] == []


def test_formgrader_s_autograde_is_refused_with_the_same_message(refusal_course: Course) -> None:
    """nbgrader's API call behind formgrader's Autograde button, with the config formgrader loads."""
    course = refusal_course
    before = _state(course)
    script = (
        "import json\n"
        "from nbgrader.apps import NbGrader\n"
        "from nbgrader.apps.api import NbGraderAPI\n"
        "from nbgrader.coursedir import CourseDirectory\n"
        "app = NbGrader()\n"
        "app.load_config_file()\n"
        "api = NbGraderAPI(CourseDirectory(parent=app), parent=app)\n"
        f"print(json.dumps(api.autograde({ASSIGNMENT!r}, 'ann')))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], cwd=course.root, env=course.environment(),
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watcher = _Children(process.pid)
    output, errors = process.communicate(timeout=300)
    assert output.strip(), errors[-3000:]
    children = watcher.stop()
    reply = json.loads(output.strip().splitlines()[-1])
    assert reply["success"] is False, reply
    # formgrader shows "log" first, in its error dialog.
    assert "Refusing to autograde" in reply["log"] and "make grade" in reply["log"], reply
    assert children == {}, children
    assert _state(course) == before
    assert [m for m in _marks(course) if m.exists()] == []


def test_coursekit_grade_still_grades_the_same_submission_in_the_sandbox(refusal_course: Course) -> None:
    course = refusal_course
    result = subprocess.run([sys.executable, "-m", "coursekit.cli", "grade", "--student", "ann"], cwd=course.root,
                            env={**course.environment(), **LIMITS}, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert scores.cell_scores(course.db_url)["ann"] == _expected(course)
    assert [m for m in _marks(course) if m.exists()] == []



@pytest.mark.parametrize("trusted", [False, True], ids=["notebook", "trusted-notebook"])
def test_pytest_grader_tests_runs_a_hostile_notebook_sandboxed_unless_trusted(tmp_path: Path, trusted: bool) -> None:
    """The notebook writes into a folder of the instructor's and their home when it can: by default, it cannot."""
    release = nbformat.read(Course(REPO).release_notebook, as_version=4)
    marks = [tmp_path / "instructor" / "OUTSIDE", Path.home() / f"OUTSIDE-{tmp_path.name}"]
    marks[0].parent.mkdir()
    notebook = tmp_path / "submission.ipynb"
    notebook.write_bytes(_hostile(release, "pytest", marks))
    option = "--trusted-notebook" if trusted else "--notebook"
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "grader_tests", option, str(notebook)],
                                cwd=REPO, capture_output=True, text=True, check=False, timeout=600)
        written = [m for m in marks if m.exists()]
    finally:
        for mark in marks:
            mark.unlink(missing_ok=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "11 passed" in result.stdout
    if trusted:
        # The control: the same notebook does reach them in-process, and the run says it is unsandboxed.
        assert written == marks
        assert "UNSANDBOXED" in result.stdout
    else:
        assert written == []
        assert "graded in the kit's sandbox" in result.stdout
