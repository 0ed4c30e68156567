"""Changing the assignment after grading (real nbgrader, real kernels): exactly the stale grades are regraded,
exports refuse them until then, manual scores that no longer fit are listed; honest output is quiet."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from coursekit import ASSIGNMENT, cli
from coursekit.course import late, staleness
from coursekit.course.directory import Course
from coursekit.engine import completion, workers

from .conftest import copy_course

pytestmark = pytest.mark.slow

PERFECT, LOSS_SUM = "correct_reference", "loss_sum"
# 2 -> 4 points and 3 -> 2 points: the total goes from 19 to 20.
NEW_POINTS = {"test_loss_values": 4, "test_train_step": 2}


def _set_points(course: Course, points: dict[str, float]) -> None:
    notebook = json.loads(course.source_notebook.read_text())
    for cell in notebook["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if grade_id in points:
            cell["metadata"]["nbgrader"]["points"] = points[grade_id]
    course.source_notebook.write_text(json.dumps(notebook, indent=1))


def _set_manual(course: Course, student: str, cell: str, score: float) -> None:
    with Gradebook(course.db_url) as gradebook:
        grade = gradebook.find_grade(cell, ASSIGNMENT, ASSIGNMENT, student)
        grade.manual_score = score
        grade.needs_manual_grade = False  # as formgrader leaves it once a grader saved the score
        gradebook.db.commit()


def _export(course: Course) -> dict[str, tuple[float, float]]:
    with open(course.root / "grades.csv", newline="") as handle:
        return {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in csv.DictReader(handle)}


def _autograded(course: Course, student: str) -> Path:
    return course.autograded / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


def test_a_change_of_points_regrades_exactly_the_stale_and_exports_refuse_until_then(
    tmp_path: Path, capfd: pytest.CaptureFixture[str],
) -> None:
    course = copy_course(tmp_path)
    assert cli.main(["release"], course=course) == 0
    for student in (PERFECT, LOSS_SUM):
        course.submit(student, course.demo_notebook(student))
    assert cli.main(["grade", "--workers", "2"], course=course) == 0
    assert cli.main(["export"], course=course) == 0
    assert _export(course) == {PERFECT: (19.0, 19.0), LOSS_SUM: (17.0, 19.0)}
    assert staleness.stale(course, [PERFECT, LOSS_SUM]) == set()
    _set_manual(course, LOSS_SUM, "test_train_step", 3)  # fits 3 points; over the new 2
    _set_manual(course, LOSS_SUM, "test_loss_values", 1)  # 1 of 2; of 4 after the change
    assert staleness.manual_scores_to_check(course) == []
    capfd.readouterr()

    _set_points(course, NEW_POINTS)
    assert cli.main(["release"], course=course) == 0
    assert staleness.stale(course, [PERFECT, LOSS_SUM]) == {PERFECT, LOSS_SUM}
    assert workers.pending(course, force=False) == [PERFECT, LOSS_SUM]
    to_check = {(m.student, m.cell): m.why for m in staleness.manual_scores_to_check(course)}
    assert to_check == {
        (LOSS_SUM, "test_train_step"): "over the cell's 2 points",
        (LOSS_SUM, "test_loss_values"): "given when the cell was worth 2 points, now 4",
    }
    for refused in ("export", "feedback"):
        assert cli.main([refused], course=course) == 1
        err = capfd.readouterr().err
        assert f"no {refused}: 2 graded before the assignment last changed" in err
        assert f"Run `make grade` (it grades exactly these), then `make {refused}` again." in err
    assert _export(course) == {PERFECT: (19.0, 19.0), LOSS_SUM: (17.0, 19.0)}, "the refused export wrote the file"

    # One student regraded on their own: the run ends with their score, with nbgrader's INFO lines hidden.
    assert cli.main(["grade", "--student", PERFECT], course=course) == 0
    out = capfd.readouterr()
    assert "[AutogradeApp | INFO]" not in out.out + out.err
    assert re.search(rf"^{PERFECT}\s+4\s+6\s+4\s+3\s+3\s+20\s*$", out.out.strip().splitlines()[-1])
    assert staleness.stale(course, [PERFECT, LOSS_SUM]) == {LOSS_SUM}
    assert cli.main(["export"], course=course) == 1
    assert f"no export: 1 graded before the assignment last changed (points, cells or checks): {LOSS_SUM}." \
        in capfd.readouterr().err

    perfect_graded = _autograded(course, PERFECT).stat().st_mtime_ns
    assert cli.main(["grade", "--workers", "2"], course=course) == 0
    out = capfd.readouterr()
    assert f"regrading {LOSS_SUM}\n" in out.err
    assert _autograded(course, PERFECT).stat().st_mtime_ns == perfect_graded, "a current grade was redone"
    assert staleness.stale(course, [PERFECT, LOSS_SUM]) == set()
    assert completion.completely_graded(course, [PERFECT, LOSS_SUM]) == {PERFECT, LOSS_SUM}

    assert cli.main(["export"], course=course) == 0
    err = capfd.readouterr().err
    # loss_sum: manual 1 on test_loss_values (auto 0/4), manual 3 on test_train_step (now out of 2), as
    # nbgrader exports them: listed below, for the instructor to set.
    assert _export(course) == {PERFECT: (20.0, 20.0), LOSS_SUM: (4 + (1 + 2) + (3 + 2) + 3 + 3, 20.0)}
    assert f"{LOSS_SUM}  test_train_step  3/2: over the cell's 2 points" in err
    assert f"{LOSS_SUM}  test_loss_values  1/4: kept through a regrade" in err
    assert workers.pending(course, force=False) == []  # `make grade`: nothing to grade


def test_honest_submissions_grade_without_warnings_and_edited_test_cells_are_still_reported(tmp_path: Path) -> None:
    course = copy_course(tmp_path)
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
    course.submit("honest", course.demo_notebook(PERFECT))
    tampered = nbformat.read(course.demo_notebook(PERFECT), as_version=4)
    cell = next(c for c in tampered.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_model_output")
    cell.source += "\nprint('edited')"
    course.submit("tampered", course.demo_notebook(PERFECT))
    nbformat.write(tampered, course.submitted_notebook("tampered"))
    # `nbgrader autograde` with the kit's config and warm kernels (as `make grade STUDENT=id`), at INFO so that
    # each warning follows its student's line.
    out = dataclasses.replace(course, verbose=True).nbgrader("autograde", ASSIGNMENT, quiet=True, warm=True).stdout
    honest = out[out.index("student with ID 'honest'"):out.index("student with ID 'tampered'")]
    assert "WARNING" not in honest and "Warning" not in honest, honest
    warnings = [line for line in out[out.index("student with ID 'tampered'"):].splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "'checksum' for cell test_model_output has changed" in warnings[0], warnings
    assert "Warning" not in out  # Python warnings (SQLAlchemy's, from nbgrader) in any student's part


def test_the_late_penalty_is_set_in_one_place_and_scores_export_and_feedback_agree(
    tmp_path: Path, capfd: pytest.CaptureFixture[str],
) -> None:
    course = copy_course(tmp_path)
    config = course.root / "nbgrader_config.py"
    text = config.read_text()
    for old, new in (('c.Deadline.due_date = ""', 'c.Deadline.due_date = "2026-11-01 12:00:00 Europe/Berlin"'),
                     ("c.LatePenalty.percent_per_day = 0 ", "c.LatePenalty.percent_per_day = 10 ")):
        assert old in text
        text = text.replace(old, new)
    config.write_text(text)
    assert cli.main(["release"], course=course) == 0
    assert "due date: 2026-11-01 11:00:00 UTC" in capfd.readouterr().out
    # On time by a minute; late by a day and a second: two started days, 20 % of 17 points.
    for student, submitted in ((PERFECT, "2026-11-01 11:59:00 Europe/Berlin"),
                               (LOSS_SUM, "2026-11-02 12:00:01 Europe/Berlin")):
        course.submit(student, course.demo_notebook(student))
        (course.submitted_notebook(student).parent / "timestamp.txt").write_text(submitted)
    assert cli.main(["grade", "--workers", "2"], course=course) == 0
    capfd.readouterr()

    assert cli.main(["scores"], course=course) == 0
    rows = {line.split()[0]: line.split()[-2:] for line in capfd.readouterr().out.splitlines()[2:]}
    assert rows == {PERFECT: ["0", "19"], LOSS_SUM: ["-3.4", "13.6"]}
    assert cli.main(["export"], course=course) == 0
    assert _export(course) == {PERFECT: (19.0, 19.0), LOSS_SUM: (13.6, 19.0)}
    assert cli.main(["feedback"], course=course) == 0
    page = (course.feedback / LOSS_SUM / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "(Score: 13.6 / 19)" in page and "Late submission penalty (Score: -3.4)" in page
    assert "Late submission penalty" not in (course.feedback / PERFECT / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()

    # A change of the rule or of the due date is a change of what graded them.
    config.write_text(text.replace("c.LatePenalty.percent_per_day = 10 ", "c.LatePenalty.percent_per_day = 5 "))
    assert staleness.stale(course, [PERFECT, LOSS_SUM]) == {PERFECT, LOSS_SUM}
    config.write_text(text)
    assert staleness.stale(course, [PERFECT, LOSS_SUM]) == set()
    config.write_text(text.replace("2026-11-01 12:00:00", "2026-11-03 12:00:00"))
    assert late.sync_due_date(course) == ("due date: 2026-11-03 11:00:00 UTC (set from nbgrader_config.py)", True)
    assert staleness.stale(course, [PERFECT, LOSS_SUM]) == {PERFECT, LOSS_SUM}
