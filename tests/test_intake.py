"""Screening submissions: each kind of unreadable file gets a reason, a stand-in and is kept aside."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from coursekit import ASSIGNMENT, cohort, intake
from coursekit.course import Course

from .conftest import copy_course

BAD_FILES: dict[str, tuple[bytes | None, str]] = {
    "missing": (None, "no custom_training_basics.ipynb in the submission"),
    "empty": (b"", "is empty (0 bytes)"),
    "not_json": (b'{"cells": [', "is not valid JSON"),
    "latin1": ('{"x": "caf\u00e9"}'.encode("latin-1"), "is not UTF-8 text"),
    "not_a_notebook": (b'{"hello": "world"}', "is not a valid Jupyter notebook"),
    "huge": (b" " * (intake.MAX_BYTES + 1), "over the 20 MiB limit"),
}


def _other_assignment() -> bytes:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('week 2')")])
    return nbformat.writes(notebook).encode()


@pytest.fixture
def course(tmp_path: Path) -> Course:
    return copy_course(tmp_path)


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_each_unreadable_file_has_a_reason(course: Course, kind: str) -> None:
    content, expected = BAD_FILES[kind]
    path = course.submitted_notebook(kind)
    path.parent.mkdir(parents=True)
    if content is not None:
        path.write_bytes(content)
    reason = intake.problem(path)
    assert reason is not None and expected in reason


def test_a_notebook_of_another_assignment_is_named_as_such(course: Course) -> None:
    path = course.submitted_notebook("other")
    path.parent.mkdir(parents=True)
    path.write_bytes(_other_assignment())
    assert "is not the custom_training_basics notebook" in (intake.problem(path) or "")


def test_honest_notebooks_pass(course: Course) -> None:
    for student in (s.student_id for s in cohort.STUDENTS):
        assert intake.problem(course.demo_notebook(student)) is None
    assert intake.problem(course.release_notebook) is None


def test_screen_keeps_the_file_and_puts_a_blank_stand_in_with_the_reason(course: Course) -> None:
    course.submit("honest", course.demo_notebook(cohort.STUDENTS[0].student_id))
    broken = course.submitted_notebook("broken")
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"\xff\xfe not a notebook")

    rejected = intake.screen(course, ["broken", "honest"])

    assert [r.student_id for r in rejected] == ["broken"]
    assert (course.root / "rejected" / "broken" / ASSIGNMENT / broken.name).read_bytes() == b"\xff\xfe not a notebook"
    stand_in = nbformat.read(broken, as_version=4)
    assert rejected[0].reason in stand_in.cells[0].source
    release = nbformat.read(course.release_notebook, as_version=4)
    assert [c.source for c in stand_in.cells[1:]] == [c.source for c in release.cells]
    # A rerun finds the stand-in and reports the same reason without touching the kept file again.
    assert intake.screen(course, ["broken", "honest"]) == rejected
    assert json.loads(course.submitted_notebook("honest").read_text())["metadata"].get(intake.REJECTED_MARK) is None
