"""nbgrader steps the kit adds to autograding."""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor


class SanitizeTestOutputs(NbGraderPreprocessor):  # enabled by default, unlike nbconvert's base
    """Tidy test cells' outputs after execution, before nbgrader scores them.

    - stderr becomes stdout: nbgrader scores any test cell that wrote to stderr 0, and a
      TensorFlow warning is no mistake of the student's. Our checks fail by raising.
    - a traceback becomes its last line (`CheckFailed: <message>`): frames from inside the
      hidden checks would show their code in the autograded notebook and the feedback.
    """

    def preprocess_cell(self, cell: NotebookNode, resources: dict[str, Any], index: int):
        if cell.cell_type != "code" or not utils.is_grade(cell) or utils.is_solution(cell):
            return cell, resources
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stderr":
                output.name = "stdout"
            elif output.output_type == "error":
                output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources
