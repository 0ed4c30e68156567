"""Execution that survives a runaway submission and keeps the points earned before it.

nbgrader's Execute (nbclient) gives up on the whole notebook when its kernel dies (`os._exit`, the
memory limit, the per-submission deadline), and after a timed-out cell it runs the next cells on a
kernel that may still be stuck, each up to the timeout again. `GuardedExecute` instead:

- records an error on the cell that broke ("the kernel died while running this cell", "this cell ran
  past the N s limit"). A cell that timed out on a kernel that answered the interrupt costs only
  itself: the notebook goes on, as in plain nbgrader. A dead kernel, or one deaf to the interrupt,
  stops the notebook: every later code cell gets "did not run", so nbgrader scores every cell that
  ran before normally and gives 0 to the checks that could not run. It does not restart a kernel and
  go on: the later cells need the state of the earlier ones, and replaying them would let one
  submission cost several times its time limit.
- bounds what the kernel can make the grader hold and write (docs/security.md, "Bounded work"):
  every iopub message counts against one budget per notebook (`max_notebook_output_bytes`: text,
  data, metadata, display updates times the outputs they rewrite, widget messages, clears), and
  against `max_output_bytes` per cell; past either, output is dropped with a note. A message whose
  JSON is larger than `max_message_json_bytes` or holds too many containers is never parsed, and
  zmq refuses frames above `max_message_frame_bytes`, so parsing cannot amplify either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import zmq
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async, run_hook, run_sync
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Integer

DIED = "the kernel died while running this cell (the code exited, crashed, or ran out of memory or CPU time)"


# The errors this step writes itself; the judge keeps them on a test cell that has no observation.
RUNAWAY_ERRORS = ("CellNotRun", "DeadKernelError", "CellTimeoutError")


# Messages that carry no output and that nbclient needs to follow a cell: never dropped, never charged.
CONTROL = frozenset({"status", "execute_input"})
MAX_CONTAINERS = 100_000  # `{` and `[` in one message: JSON of a few MB parses to ~20x its size in objects


def dropped_content(size: int, why: str) -> dict[str, Any]:
    """What the grader reads in place of a message it would not parse: a valid content for every iopub type."""
    note = f"[a message of {size} bytes from the kernel was dropped: {why}]\n"
    return {
        "msg_id": "", "msg_type": "coursekit_dropped", "name": "stdout", "text": note,
        "data": {"text/plain": note}, "metadata": {}, "transient": {}, "ename": "OutputDropped",
        "evalue": note.strip(), "traceback": [note.strip()], "execution_state": "busy", "wait": False,
        "execution_count": None, "comm_id": "", "status": "error", "payload": [], "user_expressions": {},
    }


def bounded_unpacker(unpack: Callable[[bytes], Any], max_bytes: int) -> Callable[[bytes], Any]:
    """`unpack` (jupyter_client's JSON reader), refusing what would cost the grader far more than its size."""
    if getattr(unpack, "coursekit_bounded", False):
        return unpack

    def read(data: bytes | str) -> Any:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if len(raw) > max_bytes:
            return dropped_content(len(raw), f"larger than {max_bytes} bytes")
        if raw.count(b"{") + raw.count(b"[") > MAX_CONTAINERS:
            return dropped_content(len(raw), "too many nested values")
        try:
            return unpack(raw)
        except (RecursionError, ValueError, MemoryError):
            return dropped_content(len(raw), "nested too deep or not JSON")

    read.coursekit_bounded = True  # type: ignore[attr-defined]
    return read


def forgiving_deserializer(deserialize: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """`deserialize` (jupyter_client's), reading a message it refuses (a bad or repeated signature, too few
    parts: a forked child's half-written message, or a forgery) as one addressed to no request, which nbclient
    ignores, instead of raising out of nbclient and leaving the student ungraded."""
    if getattr(deserialize, "coursekit_bounded", False):
        return deserialize

    def read(msg_list: Any, content: bool = True, copy: bool = True) -> dict[str, Any]:
        try:
            return deserialize(msg_list, content=content, copy=copy)
        except Exception:  # whatever a malformed message raises in jupyter_client
            header = {"msg_id": "", "msg_type": "coursekit_dropped"}
            return {"header": header, "msg_id": "", "msg_type": "coursekit_dropped", "parent_header": {},
                    "metadata": {}, "content": dropped_content(0, "not a valid message"), "buffers": []}

    read.coursekit_bounded = True  # type: ignore[attr-defined]
    return read


def forgiving_identities(feed: Callable[..., Any]) -> Callable[..., Any]:
    """`feed_identities`, for a message without the delimiter: no parts, which `forgiving_deserializer` drops."""
    if getattr(feed, "coursekit_bounded", False):
        return feed

    def split(msg_list: Any, copy: bool = True) -> Any:
        try:
            return feed(msg_list, copy=copy)
        except Exception:
            return [], []

    split.coursekit_bounded = True  # type: ignore[attr-defined]
    return split


def message_size(msg: dict[str, Any]) -> int:
    """What a message would cost stored in a notebook: its content as JSON, and any binary buffers."""
    try:
        size = len(json.dumps(msg.get("content", {}), default=repr))
    except (RecursionError, ValueError, TypeError):
        return 1 << 62
    return size + sum(len(memoryview(b)) for b in msg.get("buffers") or ())


def error_output(ename: str, message: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=message, traceback=[f"{ename}: {message}"])


class GuardedExecute(Execute):
    """nbgrader's Execute, bounded: see the module's docstring."""

    max_output_bytes = Integer(1_000_000, help="output kept per cell; the rest is dropped with a note").tag(
        config=True
    )
    max_notebook_output_bytes = Integer(
        1_500_000, help="everything the kernel sends for one notebook, counted as stored; the rest is dropped"
    ).tag(config=True)
    max_message_json_bytes = Integer(4_000_000, help="a message's JSON larger than this is not parsed").tag(
        config=True
    )
    max_message_frame_bytes = Integer(
        64_000_000, help="zmq disconnects a kernel sending a larger frame (the grader never holds it)"
    ).tag(config=True)

    def reset_execution_trackers(self) -> None:  # nbclient calls it before each notebook
        super().reset_execution_trackers()
        self._stopped = ""
        self._output_bytes: dict[int, int] = {}
        self._notebook_bytes = 0
        self._dropped_cells: set[int] = set()

    async def async_start_new_kernel_client(self) -> Any:
        """nbclient's, with bounds on what one message can cost the grader, set before any student code runs:
        zmq drops frames above `max_message_frame_bytes` unread, and JSON too large or too nested for its size
        is never parsed (`bounded_unpacker`)."""
        assert self.km is not None
        try:
            self.kc = self.km.client()
            self.kc.context.setsockopt(zmq.MAXMSGSIZE, self.max_message_frame_bytes)  # for the sockets it makes
            session = self.kc.session  # the client's own (a clone of the manager's), which its channels use
            session.unpack = bounded_unpacker(session.unpack, self.max_message_json_bytes)
            session.deserialize = forgiving_deserializer(session.deserialize)
            session.feed_identities = forgiving_identities(session.feed_identities)
            await ensure_async(self.kc.start_channels())
            await ensure_async(self.kc.wait_for_ready(timeout=self.startup_timeout))
        except Exception:
            await self._async_cleanup_kernel()
            raise
        self.kc.allow_stdin = False
        await run_hook(self.on_notebook_start, notebook=self.nb)
        return self.kc

    # nbclient binds the synchronous form to its own coroutine at class creation: rebind it to this one.
    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int):
        if cell.cell_type != "code" or not cell.source.strip():
            return super().preprocess_cell(cell, resources, index) if not self._stopped else (cell, resources)
        if self._stopped:
            cell.outputs = [error_output("CellNotRun", f"this cell did not run: {self._stopped}")]
            cell.execution_count = None
            return cell, resources
        self._interrupted = False
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            cell.outputs.append(error_output("DeadKernelError", self._death_reason()))
            self._stopped = "the kernel died in an earlier cell"
        except CellTimeoutError:
            if not self._interrupted:  # replied in time, output never ended: zmq dropped the kernel's output channel
                cell.outputs.append(error_output("CellTimeoutError", (
                    "this cell's output stopped arriving: the kernel sent a message larger than "
                    f"{self.max_message_frame_bytes} bytes, or its output channel broke")))
                self._stopped = "the kernel's output stopped arriving in an earlier cell"
            else:  # no reply even after the interrupt: a kernel deaf to it
                cell.outputs.append(self._timed_out())
                self._stopped = f"an earlier cell ran past the {self.timeout} s limit and its kernel stopped answering"
        else:
            # Timed out, interrupted, and the kernel answered: only this cell is lost, the notebook goes on.
            for index, output in enumerate(cell.outputs):
                if output.output_type == "error" and output.ename == "CellTimeoutError":
                    cell.outputs[index] = self._timed_out()
        return cell, resources

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None) -> Any:
        self._interrupted = True  # the cell ran past its limit (nbclient interrupts the kernel)
        return await super()._async_handle_timeout(timeout, cell)

    def _timed_out(self) -> NotebookNode:
        return error_output("CellTimeoutError", f"this cell ran past the {self.timeout} s limit")

    def _death_reason(self) -> str:
        """Why the kernel died, when the warm parent killed it at the deadline (coursekit/kernels/warm_kernels.py)."""
        # Asked of the warm parent over its own socket (bounded): never read from a folder the kernel can write.
        reason = getattr(getattr(self.km, "provisioner", None), "death_reason", lambda: "")()
        return f"the kernel was stopped while running this cell: {reason}" if reason else DIED

    def _exempt(self, msg: dict[str, Any], cell_index: int) -> bool:
        """A message that is judged and replaced, never stored (ObservedExecute: its cell's observation)."""
        return False

    def _mapped_outputs(self, display_id: str | None) -> int:
        """How many stored outputs a message with this display id rewrites (nbclient updates them all)."""
        if not display_id:
            return 0
        return sum(len(indices) for indices in self._display_id_map.get(display_id, {}).values())

    def process_message(self, msg: dict[str, Any], cell: NotebookNode, cell_index: int):
        msg_type = msg.get("msg_type", "")
        if msg_type in CONTROL or self._exempt(msg, cell_index):
            return super().process_message(msg, cell, cell_index)
        if self._notebook_bytes > self.max_notebook_output_bytes:
            return self._drop(msg, cell, cell_index)
        transient = msg.get("content", {}).get("transient") or {}
        display_id = transient.get("display_id") if isinstance(transient, dict) else None
        # Every output sharing a display id holds the update: 40 of them make one 2 MB update 80 MB stored.
        copies = self._mapped_outputs(display_id) + (msg_type != "update_display_data")
        self._notebook_bytes += message_size(msg) * max(copies, 1)
        if self._notebook_bytes > self.max_notebook_output_bytes:
            return self._drop(msg, cell, cell_index)
        return super().process_message(msg, cell, cell_index)

    def _drop(self, msg: dict[str, Any], cell: NotebookNode, cell_index: int) -> None:
        if msg.get("msg_type") == "clear_output":  # storing nothing, and what the judge must see
            super().process_message(msg, cell, cell_index)
            return None
        if msg.get("msg_type") == "error" and not any(o.get("output_type") == "error" for o in cell.outputs):
            content = msg.get("content", {})  # a short error still marks the cell as failed for nbgrader
            cell.outputs.append(error_output(str(content.get("ename", "Error"))[:100],
                                             str(content.get("evalue", ""))[:1000]))
        if cell_index not in self._dropped_cells:
            self._dropped_cells.add(cell_index)
            note = f"\n[output beyond the notebook's {self.max_notebook_output_bytes} bytes dropped]\n"
            cell.outputs.append(NotebookNode(output_type="stream", name="stdout", text=note))
        return None

    def output(self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int):
        if self._exempt(msg, cell_index):
            return super().output(outs, msg, display_id, cell_index)
        used = self._output_bytes.get(cell_index, 0)
        if used > self.max_output_bytes:
            return None
        content = msg.get("content", {})
        size = message_size(msg)
        if used + size > self.max_output_bytes:
            self._output_bytes[cell_index] = self.max_output_bytes + 1
            if msg.get("msg_type") == "stream" and isinstance(content.get("text"), str):
                msg = {**msg, "content": {**content, "text": content["text"][: self.max_output_bytes - used]}}
                super().output(outs, msg, display_id, cell_index)
            note = f"\n[output beyond {self.max_output_bytes} bytes dropped]\n"
            outs.append(NotebookNode(output_type="stream", name="stdout", text=note))
            return None
        self._output_bytes[cell_index] = used + size
        return super().output(outs, msg, display_id, cell_index)
