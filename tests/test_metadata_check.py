"""CheckCellMetadataCached gives nbgrader's CheckCellMetadata verdicts, errors included (no kernels)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import nbformat
import pytest
from nbformat import NotebookNode
from nbgrader.nbgraderformat import SchemaTooNewError, ValidationError
from nbgrader.preprocessors import CheckCellMetadata

from coursekit.course.directory import Course
from coursekit.steps.metadata_check import CheckCellMetadataCached


def _first_grade_cell(nb: NotebookNode) -> NotebookNode:
    return next(cell for cell in nb.cells if cell.metadata.get("nbgrader", {}).get("grade"))


def _points_not_a_number(nb: NotebookNode) -> None:
    _first_grade_cell(nb).metadata.nbgrader["points"] = "ten"


def _no_grade_id(nb: NotebookNode) -> None:
    del _first_grade_cell(nb).metadata.nbgrader["grade_id"]


def _schema_too_new(nb: NotebookNode) -> None:
    _first_grade_cell(nb).metadata.nbgrader["schema_version"] = 99


def _unchanged(nb: NotebookNode) -> None:
    return None


@pytest.mark.parametrize("corrupt", [_unchanged, _points_not_a_number, _no_grade_id, _schema_too_new])
def test_the_cached_check_agrees_with_nbgraders(corrupt: Callable[[NotebookNode], None]) -> None:
    nb = nbformat.read(Course.here().source_notebook, as_version=4)
    corrupt(nb)
    outcomes = []
    for step in (CheckCellMetadata(), CheckCellMetadataCached(), CheckCellMetadataCached()):  # cached twice
        try:
            step.preprocess(copy.deepcopy(nb), {})
            outcomes.append(None)
        except (ValidationError, SchemaTooNewError) as exc:
            outcomes.append((type(exc), str(exc)))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert (outcomes[0] is None) == (corrupt is _unchanged)
