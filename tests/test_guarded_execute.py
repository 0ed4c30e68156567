"""GuardedExecute's output bounds, fed real iopub messages as nbclient would (no kernel needed).

The hostile notebooks that send these messages for real are catalog entries (tests/adversarial/catalog.py,
`bounds_*`), graded by tests/test_adversarial.py.
"""

from __future__ import annotations

import json
from typing import Any

import nbformat
import pytest
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell

from coursekit.kernels.runaway import MAX_CONTAINERS, GuardedExecute, bounded_unpacker


def message(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    return {"msg_type": msg_type, "parent_header": {"msg_id": "m"}, "header": {"msg_type": msg_type},
            "content": content}


def stream(text: str) -> dict[str, Any]:
    return message("stream", {"name": "stdout", "text": text})


def display(data: str, metadata: Any = None, display_id: str | None = None, update: bool = False) -> dict[str, Any]:
    content = {"data": {"text/plain": data}, "metadata": metadata or {}}
    if display_id:
        content["transient"] = {"display_id": display_id}
    return message("update_display_data" if update else "display_data", content)


def executor(**bounds: int) -> GuardedExecute:
    execute = GuardedExecute(**{"max_output_bytes": 1000, **bounds})
    execute.reset_execution_trackers()
    execute.nb = NotebookNode(cells=[new_code_cell("pass") for _ in range(200)])
    execute.clear_before_next_output = False  # as nbclient sets it when a cell starts
    return execute


def run(execute: GuardedExecute, index: int, *messages: dict[str, Any]) -> NotebookNode:
    cell = execute.nb.cells[index]
    for msg in messages:
        execute.process_message(msg, cell, index)
    return cell


def stored(execute: GuardedExecute) -> int:
    return len(json.dumps([cell.get("outputs", []) for cell in execute.nb.cells]))


def test_output_past_the_cell_bound_is_cut_with_a_note() -> None:
    execute = executor()
    cell = run(execute, 3, stream("a" * 600), stream("b" * 50_000), stream("c" * 10))
    text = "".join(o.text for o in cell.outputs)
    assert text.startswith("a" * 600 + "b" * 300) and "c" not in text
    assert text.endswith("[output beyond 1000 bytes dropped]\n") and len(text) < 1100


def test_each_cell_has_its_own_bound() -> None:
    execute = executor()
    run(execute, 1, stream("a" * 5000))
    second = run(execute, 2, stream("b" * 900))
    assert [o.text for o in second.outputs] == ["b" * 900]


@pytest.mark.parametrize("cells", [10, 150])
def test_many_cells_share_one_budget_per_notebook(cells: int) -> None:
    execute = executor(max_output_bytes=100_000, max_notebook_output_bytes=50_000)
    for index in range(cells):
        run(execute, index, stream("x" * 9000), stream("y" * 9000))
    assert stored(execute) < 50_000 + 200 * cells
    assert "notebook's 50000 bytes dropped" in json.dumps(execute.nb)


@pytest.mark.parametrize("where", ["metadata", "nested metadata"])
def test_metadata_counts(where: str) -> None:
    execute = executor(max_output_bytes=10_000)
    big = {"junk": "m" * 1_000_000} if where == "metadata" else {"a": [{"b": ["m" * 1000] * 100}] * 10}
    cell = run(execute, 0, display("small", metadata=big))
    assert stored(execute) < 20_000 and "dropped" in cell.outputs[-1].text


@pytest.mark.parametrize("outputs", [5, 40])
def test_a_display_update_counts_once_per_output_it_rewrites(outputs: int) -> None:
    execute = executor(max_output_bytes=10_000_000, max_notebook_output_bytes=200_000)
    for index in range(outputs):
        run(execute, index, display("small", display_id="same"))
    run(execute, outputs, display("u" * 20_000, display_id="same", update=True))
    run(execute, outputs + 1, display("v" * 20_000, display_id="same"))  # a new output updates them all too
    assert stored(execute) < 200_000 + 1000 * outputs
    if outputs == 5:  # 6 x 20 kB + 7 x 20 kB fit: the bound is not the cause of what is dropped
        assert "u" * 20_000 in json.dumps(execute.nb.cells[0])


def test_clearing_frees_nothing_of_the_budget() -> None:
    execute = executor(max_output_bytes=10_000, max_notebook_output_bytes=30_000)
    clear = message("clear_output", {"wait": False})
    cell = run(execute, 0, *[m for _ in range(20) for m in (stream("z" * 5000), clear)])
    assert execute._notebook_bytes > 30_000
    later = run(execute, 1, stream("after"))
    assert "after" not in json.dumps(later.outputs) and cell.outputs == []


def test_an_error_past_the_budget_is_kept_short_so_the_cell_still_fails() -> None:
    execute = executor(max_output_bytes=10_000, max_notebook_output_bytes=5_000)
    run(execute, 0, stream("x" * 6000))
    error = message("error", {"ename": "E" * 500, "evalue": "v" * 100_000, "traceback": ["t" * 100_000]})
    cell = run(execute, 1, error, error)
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert len(errors) == 1 and len(json.dumps(errors)) < 4000


@pytest.mark.parametrize("payload", [
    b'{"text": "' + b"x" * 5_000_000 + b'"}',  # too large
    b"[" + b"{}," * (MAX_CONTAINERS + 1) + b"{}]",  # parses to ~20x its size in objects
    b"[" * 100_000 + b"]" * 100_000,  # nested beyond the parser's recursion limit
    b"not json",
])
def test_a_message_too_costly_to_parse_is_read_as_a_note(payload: bytes) -> None:
    read = bounded_unpacker(json.loads, 4_000_000)
    content = read(payload)
    assert content["msg_type"] == "coursekit_dropped" and "dropped" in content["text"]
    assert read(b'{"name": "stdout", "text": "ok"}') == {"name": "stdout", "text": "ok"}


# ---------------------------------------------------------------- with a real (plain) kernel

SEND_RAW = """
_kernel = get_ipython().kernel
_kernel.session.send(_kernel.iopub_socket, "display_data", parent=_kernel.get_parent(), content={content})
"""


def execute_cells(*sources: str, **traits: Any) -> list[str]:
    """Each cell's outputs as text, after a real python3 kernel ran them under GuardedExecute."""
    notebook = nbformat.v4.new_notebook(cells=[new_code_cell(source) for source in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    executed, _ = GuardedExecute(**{"timeout": 3, **traits}).preprocess(notebook, {"metadata": {"path": "/tmp"}})
    return [" ".join(o.get("text") or o.get("evalue") or json.dumps(o.get("data")) for o in c.outputs)
            for c in executed.cells]


@pytest.mark.slow
def test_a_timed_out_cell_on_a_responsive_kernel_costs_only_itself() -> None:
    out = execute_cells("x = 1", "while True:\n    pass", "print(x + 1)")
    assert "ran past the 3 s limit" in out[1] and out[2] == "2\n"


@pytest.mark.slow
def test_a_kernel_deaf_to_the_interrupt_stops_the_notebook() -> None:
    deaf = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    out = execute_cells("print('before')", deaf, "print('after')")
    assert out[0] == "before\n" and "ran past the 3 s limit" in out[1] and "did not run" in out[2]


@pytest.mark.slow
@pytest.mark.parametrize("content", [
    "b'{\"data\": {\"application/json\": ' + b'[' * 200_000 + b']' * 200_000 + b'}, \"metadata\": {}}'",
    "{'data': {'application/json': [{} for _ in range(900_000)]}, 'metadata': {}}",
    "{'data': {'text/plain': 'h' * 30_000_000}, 'metadata': {}}",
])
def test_messages_too_costly_to_parse_become_a_note_and_the_notebook_goes_on(content: str) -> None:
    out = execute_cells(SEND_RAW.format(content=content), "print('after')")
    assert "from the kernel was dropped" in out[0] and out[1] == "after\n"


@pytest.mark.slow
def test_a_frame_past_the_limit_never_reaches_the_grader_and_stops_the_notebook() -> None:
    out = execute_cells("print('before')", "print('x' * 10_000_000)", "print('after')",
                        max_message_frame_bytes=5_000_000)
    assert out[0] == "before\n" and "output stopped arriving" in out[1] and "did not run" in out[2]


@pytest.mark.slow
@pytest.mark.parametrize("parts", [
    '[b"<IDS|MSG>", b"0" * 64, b"{}", b"{}", b"{}", b"{}"]',  # a bad signature
    '[b"no delimiter", b"{}"]',
    '[b"<IDS|MSG>", b"0" * 64]',  # too few parts
])
def test_a_message_that_is_not_valid_is_ignored_and_the_notebook_goes_on(parts: str) -> None:
    send = f"get_ipython().kernel.iopub_socket.send_multipart({parts})\nprint('sent')"
    out = execute_cells(send, "print('after')")
    assert out == ["sent\n", "after\n"]
