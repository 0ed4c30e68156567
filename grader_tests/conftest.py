"""`pytest grader_tests --notebook PATH`: the hidden checks on one notebook, sandboxed as `make grade` runs them.

`--notebook PATH` grades the file through the kit (coursekit/engine/one_notebook.py): its code runs in a sandboxed
kernel forked from the warm parent, never in this pytest process, so any notebook, a student's included, is
safe to check. `--trusted-notebook PATH` runs its cells in this process instead (grader_tests/in_process.py):
unsandboxed, with your permissions; for notebooks you trust (your own source, the demo cohort) when you want
to debug a check with pdb.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from grader_tests.checks import Result

Judge = Callable[[str], Result]
UNSANDBOXED = "runs the notebook's code in this process, UNSANDBOXED, with your permissions: trusted notebooks only"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--notebook", action="store", default=None, metavar="PATH",
        help="the Custom Training Basics notebook to grade (any file, a student's included): its code runs in "
        "the kit's sandbox, as `make grade` runs it",
    )
    parser.addoption(
        "--trusted-notebook", action="store", default=None, metavar="PATH",
        help=f"a notebook you trust, checked in this pytest process: {UNSANDBOXED}",
    )


def _chosen(config: pytest.Config) -> tuple[Path, bool]:
    """(the notebook, whether it is trusted); ValueError says what is missing."""
    sandboxed, trusted = config.getoption("--notebook"), config.getoption("--trusted-notebook")
    if (sandboxed is None) == (trusted is None):
        raise ValueError("pass the notebook to grade: pytest grader_tests --notebook PATH "
                                f"(sandboxed), or --trusted-notebook PATH ({UNSANDBOXED})")
    path = Path(sandboxed or trusted)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    return path, trusted is not None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Say which way the notebook runs, even with -q: the trusted way must never pass unnoticed."""
    config = session.config
    try:
        path, trusted = _chosen(config)
    except ValueError:
        return  # each test says why
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    if trusted:
        reporter.write_line(f"--trusted-notebook {path}: {UNSANDBOXED}", red=True, bold=True)
    else:
        reporter.write_line(f"--notebook {path}: graded in the kit's sandbox (a sandboxed kernel in a scratch "
                            "course), as make grade does")


@pytest.fixture(scope="session")
def judge(request: pytest.FixtureRequest) -> Judge:
    """The verdict on one grade cell of the chosen notebook."""
    try:
        path, trusted = _chosen(request.config)
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)
    if trusted:
        from coursekit.course.directory import Course
        from coursekit.course.late import course_config
        from coursekit.steps.policy import integration_policy
        from grader_tests.in_process import execute, run

        # The course's policy, as the sandboxed route (a scratch copy of this course) has it.
        policy = integration_policy(course_config(Course(Path(__file__).resolve().parents[1])))
        notebook_run = execute(path)
        return lambda grade_id: run(grade_id, notebook_run.namespace, notebook_run.figures, policy)

    from coursekit.course.directory import CourseError
    from coursekit.engine import one_notebook

    try:
        verdicts = one_notebook.grade(path)
    except CourseError as exc:
        pytest.fail(f"could not grade {path} in the sandbox: {exc}", pytrace=False)

    def sandboxed(grade_id: str) -> Result:
        verdict = verdicts.get(grade_id)
        if verdict is None:
            return Result(grade_id, False, f"the graded notebook has no test cell {grade_id}")
        return Result(grade_id, verdict.passed, verdict.message)

    return sandboxed
