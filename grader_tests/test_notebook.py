"""One test per grade cell of the notebook, run on the notebook given with --notebook."""

from __future__ import annotations

import pytest

from grader_tests import checks
from grader_tests.in_process import NotebookRun, run


@pytest.mark.parametrize("grade_id", checks.GRADE_IDS)
def test_grade_cell(grade_id: str, notebook_run: NotebookRun) -> None:
    result = run(grade_id, notebook_run.namespace, notebook_run.figures)
    assert result.passed, result.message
