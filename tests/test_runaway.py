"""Runaway submissions through `coursekit grade`: each loses the checks it broke and keeps the ones before."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

from coursekit import ASSIGNMENT, cli
from coursekit.course import cohort
from coursekit.course.directory import Course
from coursekit.exports import scores

from .conftest import REPO, copy_course

pytestmark = pytest.mark.slow

CELL_TIMEOUT = 10  # seconds: the honest cells take about one here, under load
TRAIN_AND_LATER = ("test_train_step", "test_train_state", "test_convergence_fit", "test_convergence_history",
                   "test_plot_history", "test_plot_loss_weights")
TRAIN_FIRST_LINE = "def train(model, inputs, outputs, learning_rate):\n"

# student -> (the train cell, the test cells it loses, the error on the first cell that broke). The hidden tests call
# train in a probe child (kernels/probe_child.py), never in the kernel: there the lab's training loop calls it first.
RUNAWAY = {
    # The loop is interrupted and train is defined: the timed-out cell costs only itself.
    "loops_forever": (cohort.TRAIN + "\n\nwhile True:\n  pass", (),
                      ("train", f"this cell ran past the {CELL_TIMEOUT} s limit")),
    "hangs_deaf_to_interrupts": (
        cohort.TRAIN + "\n\nimport signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(10**6)",
        TRAIN_AND_LATER, ("train", f"this cell ran past the {CELL_TIMEOUT} s limit")),
    "exits_its_kernel": (cohort.TRAIN.replace(TRAIN_FIRST_LINE, TRAIN_FIRST_LINE + "  import os; os._exit(1)\n"),
                         TRAIN_AND_LATER, ("training_loop", "the kernel died while running this cell")),
    "exhausts_memory": (cohort.TRAIN.replace(TRAIN_FIRST_LINE, TRAIN_FIRST_LINE + "  hog = b'x' * (3 << 30)\n"),
                        TRAIN_AND_LATER, ("training_loop", "the kernel died while running this cell")),
    "floods_output": (cohort.TRAIN + "\n\nprint('x' * 50_000_000)", (), None),
}
STOPS_THE_NOTEBOOK = ("hangs_deaf_to_interrupts", "exits_its_kernel", "exhausts_memory")
HONEST = "correct_reference"
# Until hidden test cells import only what the sandbox shows a kernel (grader_observe), they score 0 there.
HIDDEN_TESTS_RUN = (REPO / "grader_observe").is_dir()


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Course, float]:
    course = copy_course(tmp_path_factory.mktemp("course"))
    release = nbformat.read(course.release_notebook, as_version=4)
    for student, (train, _, _) in RUNAWAY.items():
        path = tmp_path_factory.mktemp(student) / f"{ASSIGNMENT}.ipynb"
        nbformat.write(cohort.fill(release, cohort.Student(student, "runaway", train=train)), path)
        course.submit(student, path)
    course.submit(HONEST, course.demo_notebook(HONEST))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COURSEKIT_CELL_TIMEOUT", str(CELL_TIMEOUT))
        patch.setenv("COURSEKIT_SUBMISSION_DEADLINE", "90")
        course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
        start = time.monotonic()
        assert cli.main(["grade", "--force"], course=course) == 0
        elapsed = time.monotonic() - start
        assert cli.main(["feedback"], course=course) == 0
    return course, elapsed


def autograded(course: Course, student: str) -> nbformat.NotebookNode:
    return nbformat.read(course.autograded / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)


def errors_by_cell(notebook: nbformat.NotebookNode) -> dict[str, str]:
    found = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                found[cell.metadata.get("nbgrader", {}).get("grade_id", "")] = output.evalue
    return found


@pytest.mark.skipif(not HIDDEN_TESTS_RUN, reason="hidden tests need grader_observe to run in the sandbox")
def test_each_runaway_loses_what_it_broke_and_keeps_what_ran_before(graded: tuple[Course, float]) -> None:
    course, _ = graded
    got = scores.cell_scores(course.db_url)
    maxima = scores.max_cell_points(course.db_url)
    for student, (_, loses, _) in RUNAWAY.items():
        assert got[student] == {g: 0.0 if g in loses else p for g, p in maxima.items()}, student
    assert got[HONEST] == cohort.expected_scores(maxima)[HONEST]


def test_the_broken_cell_says_why_and_later_cells_run_unless_its_kernel_stopped(graded: tuple[Course, float]) -> None:
    course, _ = graded
    for student, (_, _, broke) in RUNAWAY.items():
        if broke is None:
            continue
        cell_id, message = broke
        cells = [c for c in autograded(course, student).cells if c.cell_type == "code" and c.source.strip()]
        errors = [" ".join(o.evalue for o in c.outputs if o.output_type == "error") for c in cells]
        broken = next((i for i, error in enumerate(errors) if message in error), None)
        assert broken is not None, (student, errors)
        if HIDDEN_TESTS_RUN:  # else the test cells never call train, and the training loop is where it breaks
            assert cells[broken].metadata.nbgrader["grade_id"] == cell_id, student
        later = errors[broken + 1:]
        if student in STOPS_THE_NOTEBOOK:
            assert all(error.startswith("this cell did not run") for error in later), (student, errors)
        else:  # the kernel answered the interrupt: the notebook went on
            assert not any("did not run" in error or "ran past" in error for error in later), (student, errors)


def test_grading_moves_on_within_bounded_time(graded: tuple[Course, float]) -> None:
    _, elapsed = graded
    # Two timeouts of CELL_TIMEOUT, kernel shutdowns, and six submissions on two workers; never 120 s a cell.
    assert elapsed < 300


def test_a_flood_of_output_leaves_small_notebooks_and_feedback(graded: tuple[Course, float]) -> None:
    course, _ = graded
    notebook = course.autograded / "floods_output" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    page = course.feedback / "floods_output" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    assert notebook.stat().st_size < 2_000_000
    assert page.stat().st_size < 3_000_000
    # One 50 MB message is more than the grader parses (coursekit/kernels/runaway.py): the cell says it was dropped.
    assert "bytes from the kernel was dropped" in Path(notebook).read_text()
