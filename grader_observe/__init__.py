"""Kernel-side observation for Custom Training Basics: records what the student's objects do, judges nothing.

A hidden test region calls `observe("<grade id>", globals())`. It holds no reference solution and no check:
the grader's judge (coursekit/steps/judge.py, grader_tests/checks.py) decides points from the recorded data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

MIME = "application/vnd.coursekit.observation+json"


def observe(grade_id: str, namespace: Mapping[str, Any], **injected: Any) -> Callable[[], None]:
    # Imported here so the judge can read grader_observe.inputs without TensorFlow.
    from .kernel import observe as observe_in_kernel

    return observe_in_kernel(grade_id, namespace, **injected)
