"""ReplayExecution: the writer takes a worker's outputs when the cells match, and never executes anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from coursekit.engine.routes import REPLAY_KEY
from coursekit.steps.preprocessors import NoWorkerExecution, ReplayExecution

INFO = {"student": "ann", "assignment": "hw", "notebook": "nb"}


def _notebook(*sources: str) -> nbformat.NotebookNode:
    return new_notebook(cells=[new_markdown_cell("intro"), *(new_code_cell(s) for s in sources)])


def _worker_copy(root: Path, notebook: nbformat.NotebookNode) -> Path:
    path = root / "batch1" / "autograded" / "ann" / "hw" / "nb.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(notebook, path)
    return path


def _resources(executed: Path | None) -> dict[str, Any]:
    replay = {"sha256": "0" * 64, "executed": str(executed)} if executed is not None else None
    return {"nbgrader": INFO, **({REPLAY_KEY: replay} if replay else {})}


@pytest.fixture
def executed_here(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Records any notebook that reaches nbgrader's Execute in this process: the writer must reach none."""
    calls: list[Any] = []

    def execute(self: Any, nb: Any, resources: Any) -> Any:
        calls.append(nb)
        return nb, resources

    monkeypatch.setattr("nbgrader.preprocessors.Execute.preprocess", execute)
    return calls


def test_outputs_come_from_the_worker_when_cells_match(tmp_path: Path, executed_here: list[Any]) -> None:
    done = _notebook("x = 1", "print(x)")
    done.cells[2].outputs = [new_output("stream", name="stdout", text="1\n")]
    done.cells[2].execution_count = 2
    path = _worker_copy(tmp_path, done)
    notebook, _ = ReplayExecution().preprocess(_notebook("x = 1", "print(x)"), _resources(path))
    assert notebook.cells[2].outputs[0].text == "1\n" and notebook.cells[2].execution_count == 2
    assert executed_here == []


@pytest.mark.parametrize("worker_cells", [None, ("x = 1", "print(y)"), ("x = 1",), "damaged", "elsewhere"])
def test_without_a_matching_worker_execution_it_fails_and_executes_nothing(
    tmp_path: Path, executed_here: list[Any], worker_cells: Any
) -> None:
    executed: Path | None = None
    if isinstance(worker_cells, tuple):
        executed = _worker_copy(tmp_path, _notebook(*worker_cells))
    elif worker_cells == "damaged":
        executed = _worker_copy(tmp_path, _notebook("x = 1", "print(x)"))
        executed.write_text("{not json")
    elif worker_cells == "elsewhere":  # the right notebook exists, but the coordinator named another file
        _worker_copy(tmp_path, _notebook("x = 1", "print(x)"))
        executed = tmp_path / "batch2" / "autograded" / "ann" / "hw" / "nb.ipynb"
    with pytest.raises(NoWorkerExecution, match="make grade"):
        ReplayExecution().preprocess(_notebook("x = 1", "print(x)"), _resources(executed))
    assert executed_here == []


def test_with_no_replay_information_at_all_it_fails(tmp_path: Path, executed_here: list[Any]) -> None:
    """Plain nbgrader started with the writer's environment by hand: no worker named, nothing executed."""
    _worker_copy(tmp_path, _notebook("x = 1"))
    with pytest.raises(NoWorkerExecution):
        ReplayExecution().preprocess(_notebook("x = 1"), {"nbgrader": INFO})
    assert executed_here == []
