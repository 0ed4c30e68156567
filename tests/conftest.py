from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coursekit.course import Course

REPO = Path(__file__).resolve().parents[1]


def copy_course(target: Path) -> Course:
    """A scratch copy of the course directory, so tests never touch the repo's gradebook or outputs."""
    for folder in ("source", "release", "demo"):
        shutil.copytree(REPO / folder, target / folder)
    shutil.copy(REPO / "nbgrader_config.py", target / "nbgrader_config.py")
    return Course(target)


@pytest.fixture
def repo_course() -> Course:
    return Course(REPO)
