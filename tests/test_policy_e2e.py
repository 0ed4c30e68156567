"""The grading policy end to end (real nbgrader, real kernels and probe children): a tiny course graded under the
default policy, then again after `c.GradingPolicy.integration` is changed in nbgrader_config.py."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from coursekit import ASSIGNMENT, cli
from coursekit.course import cohort, staleness
from coursekit.course.directory import Course
from coursekit.exports import scores
from grader_tests import checks

from .conftest import copy_course

pytestmark = pytest.mark.slow

STUBS, ALL_WRONG, ONE_WRONG, CORRECT = "stubs_do_nothing", "all_parts_wrong", "loss_sum", "correct_reference"
INTEGRATION = set(cohort.INTEGRATION)
LOSES = {
    checks.EACH_MISTAKE_ONCE: {
        STUBS: set(cohort.EVERY_CELL),
        ALL_WRONG: {"test_model_variables", "test_loss_values", "test_train_step", *INTEGRATION},
        ONE_WRONG: {"test_loss_values"},
        CORRECT: set(),
    },
    checks.WHOLE_NOTEBOOK: {
        STUBS: set(cohort.EVERY_CELL),
        ALL_WRONG: {"test_model_variables", "test_loss_values", "test_train_step", *INTEGRATION},
        # its own run, with the summed loss, diverges: convergence and the figures of training are lost
        ONE_WRONG: {"test_loss_values", "test_convergence_fit", "test_convergence_history", "test_plot_history",
                    "test_plot_loss_weights"},
        CORRECT: set(),
    },
}


def _lost(course: Course) -> dict[str, set[str]]:
    return {student: {cell for cell, score in cells.items() if score == 0}
            for student, cells in scores.cell_scores(course.db_url).items()}


def _messages(course: Course, student: str) -> dict[str, str]:
    """Each integration cell's verdict as the autograded notebook (and so the feedback) shows it."""
    notebook = nbformat.read(course.autograded / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    found = {}
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in INTEGRATION:
            found[grade_id] = " ".join(str(o.get("text", "")) + " ".join(o.get("traceback", []))
                                       for o in cell.outputs).replace("\n", " ")
    return found


def test_each_policy_grades_a_tiny_course_as_documented(tmp_path: Path) -> None:
    course = copy_course(tmp_path)
    assert cli.main(["release"], course=course) == 0
    for student in LOSES[checks.EACH_MISTAKE_ONCE]:
        course.submit(student, course.demo_notebook(student))
    assert cli.main(["grade", "--workers", "2"], course=course) == 0
    assert _lost(course) == LOSES[checks.EACH_MISTAKE_ONCE]
    for student in (STUBS, ALL_WRONG):
        assert all("none of your parts" in text for text in _messages(course, student).values())
    assert 'grading policy "each mistake costs once"' in _messages(course, ONE_WRONG)["test_convergence_fit"]

    config = course.root / "nbgrader_config.py"
    text = config.read_text()
    assert text.count('c.GradingPolicy.integration = "each_mistake_once"') == 1
    config.write_text(text.replace('c.GradingPolicy.integration = "each_mistake_once"',
                                   'c.GradingPolicy.integration = "whole_notebook"'))
    students = sorted(LOSES[checks.WHOLE_NOTEBOOK])
    assert staleness.stale(course, students) == set(students)  # the policy is part of what graded them
    assert cli.main(["grade", "--workers", "2"], course=course) == 0
    assert staleness.stale(course, students) == set()
    assert _lost(course) == LOSES[checks.WHOLE_NOTEBOOK]
    whole = _messages(course, ONE_WRONG)
    assert 'grading policy "whole notebook"' in whole["test_convergence_fit"]
    assert "shows the lab's run" in whole["test_plot_history"]
    assert all("none of your parts" in text for text in _messages(course, STUBS).values())
