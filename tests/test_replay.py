"""ReplayExecution: the writer takes a worker's outputs when the cells match, and executes otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from coursekit.preprocessors import ReplayExecution

INFO = {"student": "ann", "assignment": "hw", "notebook": "nb"}


def _notebook(*sources: str) -> nbformat.NotebookNode:
    return new_notebook(cells=[new_markdown_cell("intro"), *(new_code_cell(s) for s in sources)])


def _worker_copy(root: Path, notebook: nbformat.NotebookNode) -> None:
    path = root / "worker0" / "autograded" / "ann" / "hw" / "nb.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(notebook, path)


@pytest.fixture
def executed_here(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Stands in for a real kernel run: records which notebooks the writer had to execute itself."""
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
    _worker_copy(tmp_path, done)
    notebook, _ = ReplayExecution(executed_root=str(tmp_path)).preprocess(_notebook("x = 1", "print(x)"),
                                                                          {"nbgrader": INFO})
    assert notebook.cells[2].outputs[0].text == "1\n" and notebook.cells[2].execution_count == 2
    assert executed_here == []


@pytest.mark.parametrize("worker_cells", [None, ("x = 1", "print(y)"), ("x = 1",)])
def test_executes_here_when_no_worker_copy_matches(
    tmp_path: Path, executed_here: list[Any], worker_cells: tuple[str, ...] | None
) -> None:
    if worker_cells is not None:
        _worker_copy(tmp_path, _notebook(*worker_cells))
    ReplayExecution(executed_root=str(tmp_path)).preprocess(_notebook("x = 1", "print(x)"), {"nbgrader": INFO})
    assert len(executed_here) == 1
