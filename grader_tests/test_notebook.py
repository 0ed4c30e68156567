"""One test per grade cell, on the notebook given with --notebook (sandboxed) or --trusted-notebook."""

from __future__ import annotations

import pytest

from grader_tests import checks
from grader_tests.conftest import Judge


@pytest.mark.parametrize("grade_id", checks.GRADE_IDS)
def test_grade_cell(grade_id: str, judge: Judge) -> None:
    result = judge(grade_id)
    assert result.passed, result.message
