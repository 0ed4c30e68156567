"""nbgrader steps the kit adds to autograding."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from .runaway import GuardedExecute


def one_sentence_a_line(message: str) -> str:
    """Feedback shows tracebacks in a box that does not wrap: the hint at the end must not scroll out of view."""
    return re.sub(r"(?<=[.?!]) (?=[A-Z`])", "\n", message)


class SanitizeTestOutputs(NbGraderPreprocessor):  # enabled by default, unlike nbconvert's base
    """Tidy test cells' outputs after execution, before nbgrader scores them.

    - stderr becomes stdout: nbgrader scores any test cell that wrote to stderr 0, and a
      TensorFlow warning is no mistake of the student's. Our checks fail by raising.
    - a traceback becomes its last line (`CheckFailed: <message>`, a sentence a line): frames from
      inside the hidden checks would show their code in the autograded notebook and the feedback.
    """

    def preprocess_cell(self, cell: NotebookNode, resources: dict[str, Any], index: int):
        if cell.cell_type != "code" or not utils.is_grade(cell) or utils.is_solution(cell):
            return cell, resources
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stderr":
                output.name = "stdout"
            elif output.output_type == "error":
                output.traceback = [one_sentence_a_line(f"{output.ename}: {output.evalue}")]
        return cell, resources


class ReplayExecution(GuardedExecute):
    """Execute's place in autograding when workers already executed the notebook.

    Takes each code cell's outputs from the worker's autograded copy of this student's notebook, found
    under `executed_root`. The worker ran nbgrader's own sanitizing and Execute steps on the same
    submission and gradebook, so the cells match one for one; when they do not, or the worker produced
    nothing, the notebook is executed here instead.
    """

    executed_root = Unicode("", help="the workers' scratch folder (coursekit sets it)").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]):
        executed = self._executed(resources["nbgrader"])
        if executed is None or len(executed.cells) != len(nb.cells) or any(
            mine.source != theirs.source for mine, theirs in zip(nb.cells, executed.cells, strict=True)
        ):
            self.log.warning("No matching execution from a worker: executing %s here", resources["nbgrader"])
            return super().preprocess(nb, resources)
        for mine, theirs in zip(nb.cells, executed.cells, strict=True):
            if mine.cell_type == "code":
                mine.outputs = theirs.outputs
                mine.execution_count = theirs.execution_count
        return nb, resources

    def _executed(self, info: dict[str, Any]) -> NotebookNode | None:
        relative = Path("autograded") / info["student"] / info["assignment"] / f"{info['notebook']}.ipynb"
        for path in sorted(Path(self.executed_root).glob(f"*/{relative}")):
            try:
                return nbformat.read(path, as_version=4)
            except Exception:
                return None
        return None
