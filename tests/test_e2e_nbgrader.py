"""End to end with real nbgrader, real kernels and the real gradebook: the instructor's whole job."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from coursekit import ASSIGNMENT, cli
from coursekit.course import cohort
from coursekit.course.directory import Course
from coursekit.exports import scores

from .conftest import EXTRA_STUDENTS, REPO, copy_course

pytestmark = pytest.mark.slow

SOLUTION_LINES = (
    "tf.reduce_mean(tf.square(predicted_y - target_y))",
    "model.w.assign_sub(learning_rate * dw)",
    "self.w = tf.Variable(1.0)",
)
HIDDEN_MARKERS = ("BEGIN HIDDEN TESTS", "grader_tests", "checks.py", "def check_", "_run_check", "isolation.py")


def test_demo_runs_in_its_own_course_and_leaves_the_course_untouched(
    demo_run: tuple[Course, dict[str, str], dict[str, str]],
) -> None:
    demo, before, after = demo_run
    assert after == before, "the demo changed the course's own files"
    assert {"gradebook.db", "grades.csv", f"submitted/real_student/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"} <= set(after)
    assert demo.root.name == cli.DEMO_COURSE and (demo.root / cli.DEMO_MARK).is_file()
    assert demo.db_url == f"sqlite:///{demo.root / 'gradebook.db'}"
    assert "real_student" not in scores.cell_scores(demo.db_url)
    assert len(list(demo.submitted.glob(f"*/{ASSIGNMENT}"))) == len(cohort.STUDENTS) + len(EXTRA_STUDENTS)


def test_demo_refuses_a_demo_course_folder_it_did_not_make(tmp_path: Path) -> None:
    course = copy_course(tmp_path)
    (course.root / cli.DEMO_COURSE).mkdir()
    (course.root / cli.DEMO_COURSE / "notes.txt").write_text("mine")
    with pytest.raises(cli.CourseError, match="was not made by `make demo`"):
        cli.demo_course(course)
    assert (course.root / cli.DEMO_COURSE / "notes.txt").read_text() == "mine"


def test_release_is_in_sync_with_source(tmp_path: Path) -> None:
    course = copy_course(tmp_path)
    course.release_notebook.unlink()
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
    fresh = json.loads(course.release_notebook.read_text())
    committed = json.loads((REPO / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    assert fresh == committed, "release/ is out of date: run `make release` and commit it"
    released_files = sorted(p.name for p in (REPO / "release" / ASSIGNMENT).iterdir())
    assert released_files == sorted(p.name for p in course.release_notebook.parent.iterdir())
    for name in released_files:
        fresh_file = course.release_notebook.parent / name
        assert fresh_file.read_bytes() == (REPO / "release" / ASSIGNMENT / name).read_bytes(), name


def test_release_holds_no_solution_or_hidden_test_text(repo_course: Course) -> None:
    text = repo_course.release_notebook.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", *HIDDEN_MARKERS, *SOLUTION_LINES):
        assert marker not in text, marker
    cells = nbformat.read(repo_course.release_notebook, as_version=4).cells
    solution_ids = [c.metadata.nbgrader["grade_id"] for c in cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert solution_ids == ["model", "loss", "train"]


def test_validate_passes_on_source_and_fails_every_test_on_release(tmp_path: Path) -> None:
    course = copy_course(tmp_path)
    source = course.nbgrader("validate", str(course.source_notebook), quiet=True).stdout
    assert "Success! Your notebook passes all the tests." in source
    release = course.nbgrader("validate", "--invert", str(course.release_notebook), quiet=True).stdout
    assert "Success! The notebook does not pass any tests." in release


def test_every_demo_student_scores_exactly_as_expected(graded: Course) -> None:
    got = scores.cell_scores(graded.db_url)
    expected = cohort.expected_scores(scores.max_cell_points(graded.db_url))
    wrong = {
        student: {g: (got[student].get(g), points) for g, points in cells.items() if got[student].get(g) != points}
        for student, cells in expected.items()
    }
    assert not {s: diff for s, diff in wrong.items() if diff}, "(got, expected) per student and cell"
    assert len(cohort.STUDENTS) >= 25


def test_source_scores_full_marks_and_stubs_score_zero(graded: Course) -> None:
    got = scores.cell_scores(graded.db_url)
    maxima = scores.max_cell_points(graded.db_url)
    assert got["instructor_source"] == maxima
    assert set(got["blank_release"].values()) == {0.0}
    assert sum(maxima.values()) == 19


def test_feedback_shows_messages_and_hides_checks_and_solutions(graded: Course) -> None:
    pages = {p.parts[-3]: p.read_text() for p in graded.feedback.glob(f"*/{ASSIGNMENT}/{ASSIGNMENT}.html")}
    assert len(pages) == len(cohort.STUDENTS) + len(EXTRA_STUDENTS)
    for student, page in pages.items():
        for marker in HIDDEN_MARKERS:
            assert marker not in page, (student, marker)
    for line in SOLUTION_LINES:
        assert line not in pages["blank_release"]
    assert "did you sum the squared errors instead of averaging them?" in pages["loss_sum"]
    assert "You moved up the gradient" in pages["train_plus_gradient"]
    assert "replace `raise NotImplementedError()` with your code" in pages["blank_release"]


def test_autograded_test_cells_hold_messages_not_tracebacks(graded: Course) -> None:
    notebook = nbformat.read(graded.autograded / "loss_abs" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    errors = [o for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_")
              for o in c.outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["CheckFailed"]
    assert len(errors[0].traceback) == 1
    assert errors[0].traceback[0].replace("\n", " ") == f"CheckFailed: {errors[0].evalue}"
    assert "absolute error" in errors[0].evalue


def test_two_runs_print_the_same_training_table(graded: Course) -> None:
    def table(student: str) -> str:
        path = graded.autograded / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        cell = next(c for c in nbformat.read(path, as_version=4).cells
                    if c.metadata.get("nbgrader", {}).get("grade_id") == "training_loop")
        return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")

    first = table("correct_reference")
    assert first.count("Epoch") == 15 and first.startswith("Epoch  0: w=1.00 b=4.00, loss=")
    assert table("instructor_source") == first == table("correct_tf_module")


def test_export_writes_one_row_per_student(graded: Course) -> None:
    with open(graded.root / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    got = scores.cell_scores(graded.db_url)
    assert set(rows) == set(got)
    for student, cells in got.items():
        assert float(rows[student]["score"]) == pytest.approx(sum(cells.values()))


@pytest.mark.parametrize(("student", "passes"), [("correct_keras_sgd", True), ("loss_sqrt", False)])
def test_pytest_grader_tests_runs_on_any_notebook(repo_course: Course, student: str, passes: bool) -> None:
    notebook = repo_course.demo_notebook(student)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "grader_tests", "--notebook", str(notebook)],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert result.returncode == (0 if passes else 1), result.stdout[-3000:]
    if not passes:
        assert "1 failed, 10 passed" in result.stdout
        assert "did you take the square root (RMSE)?" in result.stdout


def test_warm_kernels_and_workers_score_exactly_like_plain_nbgrader(graded: Course, tmp_path: Path) -> None:
    """Plain `nbgrader autograde`, and with warm kernels; workers and warm kernels (`coursekit grade`) are how the
    demo course (`graded`) was graded, among all 30 demo students."""
    students = ["correct_noisy", "train_global_model", "model_class_attributes"]  # stderr, a train and a model mistake
    results = {}
    for way in ("plain", "warm"):
        course = copy_course(tmp_path / way)
        course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
        for student in students:
            course.submit(student, course.demo_notebook(student))
        course.nbgrader("autograde", ASSIGNMENT, quiet=True, warm=way == "warm", unsandboxed=way == "plain")
        results[way] = scores.cell_scores(course.db_url)
    workers = scores.cell_scores(graded.db_url)
    results["workers"] = {student: workers[student] for student in students}
    assert results["warm"] == results["plain"] == results["workers"]
    assert set(results["plain"]) == set(students)


CORRECT_QUIET = [
    s.student_id for s in cohort.STUDENTS if s.student_id.startswith("correct_") and "noisy" not in s.student_id
]


@pytest.mark.parametrize("student", CORRECT_QUIET)
def test_visible_tests_pass_on_correct_work_in_the_release(repo_course: Course, student: str, tmp_path: Path) -> None:
    # The release has no hidden regions, so this runs the visible tests exactly as a student's Validate does.
    # (correct_noisy is left out: nbgrader's validate fails any test cell that wrote to stderr.)
    shutil.copy(repo_course.release_notebook.with_name("lab_setup.py"), tmp_path / "lab_setup.py")
    notebook = shutil.copy(repo_course.demo_notebook(student), tmp_path)
    out = repo_course.nbgrader("validate", str(notebook), quiet=True).stdout
    assert "Success! Your notebook passes all the tests." in out, out[-3000:]
