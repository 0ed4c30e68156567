"""The grading policy for convergence and plots, chosen by the instructor in nbgrader_config.py, and nowhere else.

    c.GradingPolicy.integration = "each_mistake_once"   # or "whole_notebook"

The judge (grader_tests/checks.py) decides what each policy means; this module only reads the setting, for the
grader's steps (`ObservedExecute` picks the training run to observe, `JudgeObservations` judges with it) and for
the grading fingerprint (coursekit/course/staleness.py: a change of policy makes `make grade` regrade).
docs/grading.md, "Grading policy".
"""

from __future__ import annotations

from typing import Any

from traitlets import Enum, TraitError
from traitlets.config import Config, Configurable

from coursekit.course.directory import CourseError
from grader_tests import checks


class GradingPolicy(Configurable):
    integration = Enum(
        list(checks.POLICIES), default_value=checks.DEFAULT_POLICY,
        help='how convergence and plots are judged: "each_mistake_once" (a wrong part is replaced by the '
             'reference there, so it costs only its own points) or "whole_notebook" (the student\'s own run and '
             "figures). Under both, a notebook none of whose parts passes its own checks earns none of them.",
    ).tag(config=True)


def integration_policy(config: Config) -> str:
    """The configured policy; a value that is not one raises with what to write instead."""
    try:
        return GradingPolicy(config=config).integration
    except TraitError:
        value = config.GradingPolicy.get("integration")
        raise CourseError(
            f"c.GradingPolicy.integration = {value!r} in nbgrader_config.py is not a grading policy: "
            f"write one of {', '.join(repr(name) for name in checks.POLICIES)}."
        ) from None


def rule(config: Config) -> dict[str, Any]:
    """The policy as plain data (part of the grading fingerprint)."""
    return {"GradingPolicy.integration": integration_policy(config)}
