"""The hostile catalog, graded in one cohort with honest students through `coursekit grade`.

The cohort is graded once per test session (`hostile` in tests/conftest.py, shared with tests/test_lifetime.py
and tests/browser/test_active_content.py); the honest students' grades alone are those of the demo course
(`graded`), where they are graded among honest students only.

Every hostile submission must earn exactly what its honest parts are worth, and the honest students must
get exactly the grades they get when graded alone. Where a trick prints, displays or forges results, the
autograded test cells must hold the judge's verdict alone. docs/security-judging.md explains each defence.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from coursekit import ASSIGNMENT
from coursekit.course import cohort
from coursekit.course.directory import Course
from coursekit.exports import scores
from coursekit.steps.judge import TAMPERED

from .adversarial.catalog import ALL, ALONE_STUDENT, CATALOG, Hostile
from .conftest import HONEST, LIMITS, SECRETS, HostileRun

pytestmark = pytest.mark.slow

MAX_NOTEBOOK_BYTES = 2 * 2**20


def test_the_catalog_is_big_enough() -> None:
    assert len(CATALOG) >= 25
    assert len({h.student_id for h in CATALOG}) == len(CATALOG)
    assert all(set(h.tampered) <= set(h.loses) for h in CATALOG)


def test_grading_finishes_and_names_every_rejected_file(hostile: HostileRun) -> None:
    result = hostile.result
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    for entry in CATALOG:
        if entry.loses == ALL:
            assert entry.student_id in output, f"{entry.student_id} is not named in the run's output"


@pytest.mark.parametrize("entry", CATALOG, ids=lambda h: h.student_id)
def test_each_hostile_submission_earns_exactly_its_honest_part(
    hostile: HostileRun, entry
) -> None:
    course = hostile.course
    maxima = scores.max_cell_points(course.db_url)
    expected = {cell: 0.0 if entry.loses == ALL or cell in entry.loses else points
                for cell, points in maxima.items()}
    assert scores.cell_scores(course.db_url).get(entry.student_id) == expected, entry.story


@pytest.mark.parametrize("entry", [h for h in CATALOG if h.verdict_only], ids=lambda h: h.student_id)
def test_the_autograded_test_cells_hold_only_the_judges_verdict(hostile: HostileRun, entry: Hostile) -> None:
    course = hostile.course
    path = course.autograded / entry.student_id / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    test_cells = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")
                  and not c.metadata["nbgrader"].get("solution")]
    assert len(test_cells) == len(scores.max_cell_points(course.db_url))
    for cell in test_cells:
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        assert len(cell.outputs) == 1, (grade_id, cell.outputs)
        if grade_id in entry.loses:
            assert cell.outputs[0].output_type == "error", (grade_id, cell.outputs[0])
            # A forger's record was there and was refused, not merely malformed; other failures are judged.
            assert (cell.outputs[0].evalue == TAMPERED) == (grade_id in entry.tampered), (grade_id, cell.outputs[0])


def test_honest_students_get_what_they_get_alone(
    hostile: HostileRun, graded: Course
) -> None:
    """Among the hostile cohort as among honest students only (the demo course, `graded`), and as expected."""
    together = scores.cell_scores(hostile.course.db_url)
    honest_only = scores.cell_scores(graded.db_url)
    expected = cohort.expected_scores(scores.max_cell_points(hostile.course.db_url))
    for student in HONEST:
        assert together[student] == honest_only[student] == expected[student], student


def test_the_gradebook_is_intact(hostile: HostileRun) -> None:
    course = hostile.course
    with sqlite3.connect(course.root / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert sum(scores.max_cell_points(course.db_url).values()) == 19
    graded = scores.cell_scores(course.db_url)
    assert set(graded) == set(HONEST) | {h.student_id for h in CATALOG}


def test_autograded_notebooks_and_feedback_stay_small(hostile: HostileRun) -> None:
    course = hostile.course
    assert not hostile.feedback_error
    for folder in (course.autograded, course.feedback):
        files = [p for p in folder.glob(f"*/{ASSIGNMENT}/*") if p.suffix in (".ipynb", ".html")]
        assert len(files) >= len(CATALOG)
        too_big = {p.name: os.path.getsize(p) for p in files if p.stat().st_size > MAX_NOTEBOOK_BYTES}
        assert not too_big


def test_rejected_files_are_kept_as_sent(hostile: HostileRun) -> None:
    """Intake grades a copy (intake/): submitted/ stays as the student sent it."""
    course = hostile.course
    release = nbformat.read(course.release_notebook, as_version=4)
    for entry in CATALOG:
        content = entry.build(release)
        if entry.loses != ALL or content is None:
            continue
        assert course.submitted_notebook(entry.student_id).read_bytes() == content, entry.student_id


def test_nothing_handed_in_beside_the_notebook_reaches_autograded_or_feedback(hostile: HostileRun) -> None:
    """Only the notebook, the release's own files and a timestamp.txt that intake parsed; no link of any kind."""
    course = hostile.course
    assert not hostile.feedback_error
    allowed = {f"{ASSIGNMENT}.ipynb", f"{ASSIGNMENT}.html", "timestamp.txt",
               *(p.name for p in (course.root / "release" / ASSIGNMENT).iterdir())}
    for folder in (course.autograded, course.feedback):
        for student in os.scandir(folder):
            if not student.is_dir(follow_symlinks=False):
                continue
            names = {p.relative_to(student.path).as_posix(): p for p in Path(student.path).rglob("*")}
            assert not [n for n, p in names.items() if p.is_symlink()], student.name
            files = {n.split("/", 1)[1] for n, p in names.items() if p.is_file()}
            assert files <= allowed, (student.name, files - allowed)


def test_nothing_the_students_ran_is_left_running(hostile: HostileRun) -> None:
    """Kernels, their children and warm parents all work in the course or a worker's scratch course."""
    roots = (str(hostile.course.root), "coursekit-workers-")
    leftovers = []
    for proc in Path("/proc").iterdir():
        try:
            cwd = os.readlink(proc / "cwd") if proc.name.isdigit() else ""
        except OSError:
            continue
        if any(root in cwd for root in roots):
            leftovers.append((proc.name, cwd))
    assert not leftovers


# ---------------------------------------------------------------- kernels branch


def test_no_secret_and_no_solution_reaches_the_students_files(hostile: HostileRun) -> None:
    """The grader's environment never reaches a kernel, and no grader process follows a link a kernel planted."""
    course = hostile.course
    assert not hostile.feedback_error
    assert "### BEGIN SOLUTION" in course.source_notebook.read_text()  # in the source only: never released
    files = [p for folder in (course.autograded, course.feedback) for p in folder.rglob("*") if p.is_file()]
    assert len(files) >= 2 * len(CATALOG)
    for path in files:
        text = path.read_text(errors="replace")
        for secret in (*SECRETS.values(), "### BEGIN SOLUTION"):
            assert secret not in text, (path, secret)
    for student in ("print_environ", "print_proc_environ"):  # they did print what they saw
        kept = course.autograded / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert "PATH" in kept.read_text(), student


def _the_runs_processes(tmp: str) -> list[tuple[int, str]]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if tmp in cmdline:
            found.append((int(proc.name), cmdline))
    return found


def test_no_process_of_the_run_is_left(hostile: HostileRun) -> None:
    """Warm parents, kernels and the daemons `background_daemons` started all carry the run's temp folder."""
    course = hostile.course
    tmp = str((course.root / "tmp-folder").resolve())
    deadline = time.monotonic() + 5
    while (left := _the_runs_processes(tmp)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left


def test_student_alone_gets_the_cohorts_grade(hostile: HostileRun) -> None:
    """STUDENT= grades through the same intake, workers and writer as the cohort: the same grade, cell by cell.

    One submission carries every trait that once made the single-student path differ (tests/adversarial/catalog.py,
    `ALONE_STUDENT`): a handed-in matplotlib_inline.py that shadowed the real module, a subfolder and data, a
    timestamp.txt that is not a date, and an id with a leading dot, quotes and unicode. Its model cell fails if any
    handed-in file reaches the kernel's folder, so a full grade in both modes shows the same folder in both."""
    course = hostile.course
    cohort_scores = scores.cell_scores(course.db_url)
    assert cohort_scores[ALONE_STUDENT] == scores.max_cell_points(course.db_url)
    autograded = course.autograded / ALONE_STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    graded_in_cohort = autograded.stat().st_mtime_ns
    result = subprocess.run(
        [sys.executable, "-m", "coursekit.cli", "grade", f"--student={ALONE_STUDENT}"], cwd=course.root,
        env={**course.environment(), **LIMITS}, text=True, capture_output=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert autograded.stat().st_mtime_ns != graded_in_cohort, "STUDENT= did not regrade"
    assert scores.cell_scores(course.db_url)[ALONE_STUDENT] == cohort_scores[ALONE_STUDENT]


def test_no_autograded_notebook_holds_active_content(hostile: HostileRun) -> None:
    """Whatever a submission displayed or wrote, its autograded notebook holds no script (steps/sanitize.py)."""
    from .test_sanitize import active

    course = hostile.course
    release_text = {cell.source for cell in nbformat.read(course.release_notebook, as_version=4).cells}
    for path in course.autograded.glob(f"*/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            html = [cell.source] if cell.cell_type != "code" and cell.source not in release_text else []
            html += [output.get("data", {}).get("text/html", "") for output in cell.get("outputs", [])]
            for text in html:
                found = active(text)
                assert found.found == [] and found.handlers == [], (path.parts[-3], text[:300])
# Only the stand-ins hold these (grader_tests/stand_ins.py, and the name the probe child gives their module).
STAND_IN_MARKERS = ("A tf.Module, so a student", "Model(tf.Module)", "coursekit_stand_ins")


def test_no_stand_in_reaches_an_autograded_notebook_or_feedback(hostile: HostileRun) -> None:
    """The reference parts stay in probe children; what comes back from them is redacted (kernels/probe_child.py)."""
    course = hostile.course
    thieves = [h.student_id for h in CATALOG if h.student_id.startswith("refout_")]
    assert thieves and not hostile.feedback_error
    for student in thieves:
        notebook = nbformat.read(course.autograded / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
        outputs = json.dumps([cell.get("outputs", []) for cell in notebook.cells])
        page = (course.feedback / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
        for marker in STAND_IN_MARKERS:
            assert marker not in outputs and marker not in page, (student, marker)
