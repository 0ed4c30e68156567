"""nbgrader steps the kit adds to autograding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor

from coursekit.engine.routes import REPLAY_KEY
from coursekit.steps.judge import HINTS_KEY, RESOURCE_KEY, is_observed, one_sentence_a_line

__all__ = ["NoWorkerExecution", "ReplayExecution", "SanitizeTestOutputs", "one_sentence_a_line"]


class SanitizeTestOutputs(NbGraderPreprocessor):  # enabled by default, unlike nbconvert's base
    """Tidy test cells' outputs after execution, before nbgrader scores them.

    JudgeObservations already leaves observed test cells with only its verdict; this covers any test cell
    that does not call the observer, and cells a worker judged.

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


class NoWorkerExecution(RuntimeError):
    """The writer found no execution of this submission by a worker: it records nothing and executes nothing."""


class ReplayExecution(NbGraderPreprocessor):
    """Execute's place in the gradebook writer: the outputs of a worker's sandboxed execution, never a kernel.

    Takes each code cell's outputs from the worker's autograded copy of exactly this submission, the file
    the coordinator named for it (`resources[REPLAY_KEY]["executed"]`, see coursekit/engine/routes.py). The worker
    ran nbgrader's own sanitizing and Execute steps on the same bytes and gradebook, so the cells match one for
    one. When there is no such copy, or its cells do not match, this raises: the submission fails with that
    reason, stays ungraded and is executed again, by a worker, in the next run. Replayed outputs were judged by
    the worker's grader process already: JudgeObservations leaves them as they are.
    """

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]):
        replay = resources.get(REPLAY_KEY) or {}
        executed = self._executed(replay.get("executed"))
        if executed is None:
            raise NoWorkerExecution("no execution by a worker for this submission: not recorded (it is never "
                                    "executed outside the sandbox); the next `make grade` grades it")
        if len(executed.cells) != len(nb.cells) or any(
            mine.source != theirs.source for mine, theirs in zip(nb.cells, executed.cells, strict=True)
        ):
            raise NoWorkerExecution("the worker's execution does not match this submission's cells: not recorded; "
                                    "the next `make grade` grades it")
        for mine, theirs in zip(nb.cells, executed.cells, strict=True):
            if mine.cell_type == "code":
                mine.outputs = theirs.outputs
                mine.execution_count = theirs.execution_count
                # The worker's judge recorded its hint ids with the verdict: they go with it, on test cells only.
                mine.metadata.pop(HINTS_KEY, None)
                if HINTS_KEY in theirs.metadata and is_observed(mine):
                    mine.metadata[HINTS_KEY] = theirs.metadata[HINTS_KEY]
        resources[RESOURCE_KEY] = {"replayed": True}
        return nb, resources

    @staticmethod
    def _executed(path: str | None) -> NotebookNode | None:
        if not path or not Path(path).is_file():
            return None
        try:
            return nbformat.read(path, as_version=4)
        except Exception:  # a damaged copy is no execution
            return None
