"""Execution that survives a runaway submission and keeps the points earned before it.

nbgrader's Execute (nbclient) gives up on the whole notebook when its kernel dies (`os._exit`, the
memory limit, the per-submission deadline), and after a timed-out cell it runs the next cells on a
kernel that may still be stuck, each up to the timeout again. `GuardedExecute` instead:

- records an error on the cell that broke ("the kernel died while running this cell", "this cell ran
  past the N s limit"), and on every later code cell ("did not run"), so nbgrader scores every cell
  that ran before normally and gives 0 to the checks that could not run. It does not restart a
  kernel and go on: the later cells need the state of the earlier ones, and replaying them would
  let one submission cost several times its time limit.
- keeps at most `max_output_bytes` of output per cell: a submission printing 50 MB leaves a small
  notebook and small feedback (LimitOutput then trims the lines that are kept).
"""

from __future__ import annotations

from typing import Any

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Integer

DIED = "the kernel died while running this cell (the code exited, crashed, or ran out of memory or CPU time)"


# The errors this step writes itself; the judge keeps them on a test cell that has no observation.
RUNAWAY_ERRORS = ("CellNotRun", "DeadKernelError", "CellTimeoutError")


def error_output(ename: str, message: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=message, traceback=[f"{ename}: {message}"])


class GuardedExecute(Execute):
    """nbgrader's Execute, bounded: see the module's docstring."""

    max_output_bytes = Integer(1_000_000, help="output kept per cell; the rest is dropped with a note").tag(
        config=True
    )

    def reset_execution_trackers(self) -> None:  # nbclient calls it before each notebook
        super().reset_execution_trackers()
        self._stopped = ""
        self._output_bytes: dict[int, int] = {}

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int):
        if cell.cell_type != "code" or not cell.source.strip():
            return super().preprocess_cell(cell, resources, index) if not self._stopped else (cell, resources)
        if self._stopped:
            cell.outputs = [error_output("CellNotRun", f"this cell did not run: {self._stopped}")]
            cell.execution_count = None
            return cell, resources
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            cell.outputs.append(error_output("DeadKernelError", self._death_reason()))
            self._stopped = "the kernel died in an earlier cell"
        except CellTimeoutError:  # no reply, or its output never ended: a kernel deaf to the interrupt
            cell.outputs.append(self._timed_out())
        else:
            for index, output in enumerate(cell.outputs):
                if output.output_type == "error" and output.ename == "CellTimeoutError":
                    cell.outputs[index] = self._timed_out()
        return cell, resources

    def _timed_out(self) -> NotebookNode:
        self._stopped = f"an earlier cell ran past the {self.timeout} s limit"
        return error_output("CellTimeoutError", f"this cell ran past the {self.timeout} s limit")

    def _death_reason(self) -> str:
        """Why the kernel died, when the warm parent killed it at the deadline (coursekit/warm_kernels.py)."""
        # Asked of the warm parent over its own socket (bounded): never read from a folder the kernel can write.
        reason = getattr(getattr(self.km, "provisioner", None), "death_reason", lambda: "")()
        return f"the kernel was stopped while running this cell: {reason}" if reason else DIED

    def output(self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int):
        used = self._output_bytes.get(cell_index, 0)
        if used > self.max_output_bytes:
            return None
        content = msg.get("content", {})
        size = len(content.get("text", "")) + sum(len(str(v)) for v in content.get("data", {}).values())
        if used + size > self.max_output_bytes:
            self._output_bytes[cell_index] = self.max_output_bytes + 1
            if msg.get("msg_type") == "stream":
                msg = {**msg, "content": {**content, "text": content["text"][: self.max_output_bytes - used]}}
                super().output(outs, msg, display_id, cell_index)
            note = f"\n[output beyond {self.max_output_bytes} bytes dropped]\n"
            outs.append(NotebookNode(output_type="stream", name="stdout", text=note))
            return None
        self._output_bytes[cell_index] = used + size
        return super().output(outs, msg, display_id, cell_index)
