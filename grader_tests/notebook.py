"""The call a hidden test region makes: `grade("<grade_id>", globals())`.

It runs the grade cell's checks and either prints what passed or raises `CheckFailed` with
what failed. Frames here are hidden from IPython tracebacks, and the kit's autograde step
strips test-cell tracebacks anyway, so students see messages, never the checks' code.
Importing this module starts recording figures: the first hidden region runs before any plot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from . import checks, figures

figures.install()


class CheckFailed(AssertionError):
    """A hidden check failed; the message is meant for the student."""


def _visible_tests_superseded() -> None:
    """Stands in for a cell's visible tests: the hidden checks above cover them, in isolation."""


def grade(grade_id: str, namespace: Mapping[str, Any]) -> Callable[[], None]:
    __tracebackhide__ = True
    result = checks.run(grade_id, namespace, figures.RECORDED)
    if not result.passed:
        raise CheckFailed(result.message) from None
    print("Hidden tests passed:", *(f"  ✓ {line}" for line in result.message.splitlines()), sep="\n")
    return _visible_tests_superseded
