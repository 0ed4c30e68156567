from __future__ import annotations

from pathlib import Path

import pytest

from grader_tests.in_process import NotebookRun, execute


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--notebook",
        action="store",
        default=None,
        help="the Custom Training Basics notebook to grade (a student's submission or the source)",
    )


@pytest.fixture(scope="session")
def notebook_run(request: pytest.FixtureRequest) -> NotebookRun:
    path = request.config.getoption("--notebook")
    if path is None:
        pytest.fail("pass the notebook to grade: pytest grader_tests --notebook PATH", pytrace=False)
    if not Path(path).is_file():
        pytest.fail(f"--notebook {path}: no such file", pytrace=False)
    return execute(Path(path))
