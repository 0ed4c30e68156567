"""results.json for Gradescope, from the kit's verdicts (Gradescope's autograder specification, "Output format":
https://gradescope-autograders.readthedocs.io/en/latest/specs/).

One test per grade cell, named by its group and what it checks, with the cell's points and the check's message;
one informational test, always shown, saying whether the notebook was found and graded; a top-level score,
execution time and summary.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coursekit.engine.one_notebook import Verdict
from coursekit.exports.scores import group_of
from coursekit.gradescope import settings

# A short description per grade cell (docs/grading.md has the long one). A grade cell missing here is still
# reported, under its grade id: a test makes sure none is missing.
DESCRIPTIONS: dict[str, str] = {
    "test_model_variables": "w and b are trainable float32 variables starting at 1.0 and 4.0",
    "test_model_output": "Model computes w*x + b",
    "test_loss_values": "loss is the mean squared error",
    "test_loss_properties": "loss is a scalar gradients flow through",
    "test_train_step": "one train step does exact gradient descent and returns the loss",
    "test_train_state": "train updates the model passed in, and only that",
    "test_convergence_fit": "15 epochs of training reach the expected w, b and loss",
    "test_convergence_history": "the loss falls every epoch; list_w, list_b and losses match",
    "test_plot_data": "plot of the data and the untrained model",
    "test_plot_history": "plot of w and b per epoch",
    "test_plot_loss_weights": "plots of the test set and of the loss against w and b",
}
SUBMISSION_TEST = "Submission: notebook found and graded"
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
# The spec's fields and their JSON types (the ones this builder writes; all are optional in the spec).
TOP_FIELDS: dict[str, tuple[type, ...]] = {
    "score": (int, float), "execution_time": (int, float), "output": (str,), "output_format": (str,),
    "visibility": (str,), "stdout_visibility": (str,), "extra_data": (dict,), "tests": (list,),
}
TEST_FIELDS: dict[str, tuple[type, ...]] = {
    "score": (int, float), "max_score": (int, float), "status": (str,), "name": (str,), "name_format": (str,),
    "number": (str,), "output": (str,), "output_format": (str,), "tags": (list,), "visibility": (str,),
    "extra_data": (dict,),
}


def test_name(grade_id: str) -> str:
    return f"{group_of(grade_id)}: {DESCRIPTIONS.get(grade_id, grade_id)}"


def _grade_test(number: int, grade_id: str, verdict: Verdict) -> dict[str, Any]:
    return {
        "number": str(number),
        "name": test_name(grade_id),
        "score": verdict.points,
        "max_score": verdict.max_points,
        "status": "passed" if verdict.points >= verdict.max_points else "failed",
        "output": verdict.message or ("passed" if verdict.passed else "failed"),
        "output_format": "text",
        "tags": [group_of(grade_id), grade_id],
        "visibility": settings.VISIBILITY,
    }


def build(
    verdicts: Mapping[str, Verdict], *, execution_time: float, problem: str | None = None,
    summary: str | None = None,
) -> dict[str, Any]:
    """results.json's content. `problem`: why the notebook could not be graded (every test then gets 0 and the
    student sees the reason at once); `summary`: what to say above the tests otherwise."""
    total = round(sum(v.points for v in verdicts.values()), 4)
    maximum = sum(v.max_points for v in verdicts.values())
    when = {"visible": "", "after_due_date": " after the due date", "after_published": " when grades are published",
            "hidden": None}[settings.VISIBILITY]
    if problem is not None:
        output = f"Your submission could not be graded: {problem}\nYour score is 0. Fix this and submit again."
    elif summary is not None:
        output = summary
    elif when == "":
        output = f"Your notebook was graded: {total:g} of {maximum:g} points."
    elif when is None:
        output = "Your notebook was graded. Your instructor will tell you your results."
    else:
        output = f"Your notebook was graded. The points and messages of each part are shown{when}."
    submission = {
        "number": "0",
        "name": SUBMISSION_TEST,
        "status": "failed" if problem is not None else "passed",
        "output": problem or "custom_training_basics.ipynb was found and graded.",
        "output_format": "text",
        "visibility": settings.SUBMISSION_VISIBILITY,
    }
    return {
        "score": total,
        "execution_time": round(execution_time, 1),
        "output": output,
        "output_format": "text",
        "stdout_visibility": "hidden",
        "tests": [submission, *(_grade_test(n, g, v) for n, (g, v) in enumerate(verdicts.items(), 1))],
    }


def problems(results: Any) -> list[str]:
    """What in `results` does not follow the specification's fields and types (empty: it does)."""
    found: list[str] = []

    def check(where: str, value: Any, fields: dict[str, tuple[type, ...]]) -> None:
        if not isinstance(value, dict):
            found.append(f"{where} is not an object")
            return
        for name, item in value.items():
            if name not in fields:
                found.append(f"{where}.{name} is not a field of the specification")
            elif isinstance(item, bool) or not isinstance(item, fields[name]):
                found.append(f"{where}.{name} is a {type(item).__name__}")
        for name in ("visibility", "stdout_visibility"):
            if name in value and value[name] not in VISIBILITIES:
                found.append(f"{where}.{name} is {value[name]!r}")
        if value.get("status", "passed") not in ("passed", "failed"):
            found.append(f"{where}.status is {value['status']!r}")

    check("results", results, TOP_FIELDS)
    if isinstance(results, dict):
        tests = results.get("tests", [])
        if "score" not in results and any("score" not in t for t in tests if isinstance(t, dict)):
            found.append("no score at the top level nor on every test")
        for index, test in enumerate(tests if isinstance(tests, list) else []):
            check(f"tests[{index}]", test, TEST_FIELDS)
    return found


def write(results: dict[str, Any], path: Path) -> None:
    """Write `results` to `path` whole or not at all: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".results-", dir=path.parent)
    with os.fdopen(fd, "w") as file:
        json.dump(results, file, indent=2, ensure_ascii=False)
        file.write("\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
