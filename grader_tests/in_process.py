"""Run a notebook's non-test cells in this process, for `pytest grader_tests --notebook PATH`.

Test cells are skipped: pytest observes and judges each grade cell directly, the same steps autograding
takes (grader_observe in the kernel and in a probe child, then grader_tests.checks in the grader), except
that here all of them run in this one process, stand-ins included: for notebooks the instructor trusts.
A cell that raises is recorded and the run goes on, as nbgrader does, so one broken part does not hide
the others.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import nbformat
from IPython.core.inputtransformer2 import TransformerManager

from grader_observe import figures, inputs
from grader_observe.isolation import quiet
from grader_observe.kernel import RUN, collect, collect_apart, load_stand_ins

from . import checks, stand_ins_source

# The files that come with the assignment (lab_setup.py): the instructor's copies, as nbgrader
# restores them when it autogrades, whatever sits beside the notebook being graded.
ASSIGNMENT_FILES = Path(__file__).resolve().parents[1] / "source" / "custom_training_basics"


def _through_json(observation: dict[str, Any]) -> dict[str, Any]:
    # As an observation travels from a kernel or a probe child to the judge.
    return json.loads(json.dumps(observation, allow_nan=False))


def run(grade_id: str, namespace: dict[str, Any], figures_drawn: list[Any] | None = None,
        policy: str = checks.DEFAULT_POLICY) -> checks.Result:
    """Observe one grade cell on this namespace, as autograding does (the kernel's record, and what a probe
    child would observe, here in this process), then judge it under the grading `policy`."""
    kernel = _through_json(collect(grade_id, namespace, figures_drawn or []))
    model_and_loss = load_stand_ins(stand_ins_source(("Model", "loss")))
    train = {train_id: _through_json(collect_apart(train_id, namespace, model_and_loss)) for train_id in checks.APART}
    apart = train.get(grade_id)
    if grade_id in inputs.RUN_GRADE_IDS:
        mix = checks.mix_for(checks.part_statuses(kernel.get("parts"), train), policy)
        if mix is not None:
            substituted = [part for part, who in zip(inputs.PARTS, mix.split("/"), strict=True) if who == "stand-in"]
            apart = _through_json(collect_apart(RUN, namespace, load_stand_ins(stand_ins_source(substituted)), mix))
    return checks.judge(grade_id, checks.compose(grade_id, kernel, apart, train, policy))


class _NoMagics:
    """`get_ipython()` for transformed magics (`%matplotlib inline`): they do nothing here."""

    def run_line_magic(self, *args: Any, **kwargs: Any) -> None:
        return None

    run_cell_magic = run_line_magic

    def system(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class NotebookRun:
    namespace: dict[str, Any]
    figures: list[Any]
    errors: list[str] = field(default_factory=list)


def is_test_cell(cell: Any) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def execute(path: Path) -> NotebookRun:
    notebook = nbformat.read(path, as_version=4)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures.install()
    start = len(figures.RECORDED)
    namespace: dict[str, Any] = {"__name__": "__main__", "get_ipython": _NoMagics}
    run = NotebookRun(namespace, [])
    transformer = TransformerManager()
    original_show = plt.show
    plt.show = lambda *args, **kwargs: plt.close("all")  # the inline backend's show: display, then close
    sys.path.insert(0, str(ASSIGNMENT_FILES))
    try:
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code" or is_test_cell(cell):
                continue
            source = transformer.transform_cell(cell.source)
            try:
                with quiet():
                    exec(compile(source, f"<cell {index}>", "exec"), namespace)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                run.errors.append(f"cell {index}: {type(exc).__name__}: {exc}")
            finally:
                with contextlib.suppress(Exception):
                    plt.close("all")
    finally:
        plt.show = original_show
        sys.path.remove(str(ASSIGNMENT_FILES))
    run.figures = figures.RECORDED[start:]
    return run
