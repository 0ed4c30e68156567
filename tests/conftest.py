from __future__ import annotations

from pathlib import Path

import pytest

from coursekit.course import Course

REPO = Path(__file__).resolve().parents[1]


def copy_course(target: Path) -> Course:
    """A scratch copy of the course directory, so tests never touch the repo's gradebook or outputs."""
    return Course(REPO).scratch_copy(target)


@pytest.fixture
def repo_course() -> Course:
    return Course(REPO)
