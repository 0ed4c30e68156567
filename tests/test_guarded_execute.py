"""GuardedExecute's output bound, fed real iopub messages as nbclient would (no kernel needed)."""

from __future__ import annotations

from typing import Any

from coursekit.runaway import GuardedExecute


def stream(text: str) -> dict[str, Any]:
    return {"msg_type": "stream", "parent_header": {"msg_id": "m"}, "header": {"msg_type": "stream"},
            "content": {"name": "stdout", "text": text}}


def executor() -> GuardedExecute:
    execute = GuardedExecute(max_output_bytes=1000)
    execute.clear_before_next_output = False  # as nbclient sets it when a cell starts
    return execute


def test_output_past_the_bound_is_cut_with_a_note() -> None:
    execute = executor()
    outputs: list[Any] = []
    execute.output(outputs, stream("a" * 600), None, 3)
    execute.output(outputs, stream("b" * 50_000_000), None, 3)
    execute.output(outputs, stream("c" * 10), None, 3)
    text = "".join(o.text for o in outputs)
    assert text.startswith("a" * 600 + "b" * 400) and "c" not in text
    assert text.endswith("[output beyond 1000 bytes dropped]\n") and len(text) < 1100


def test_each_cell_has_its_own_bound() -> None:
    execute = executor()
    first: list[Any] = []
    second: list[Any] = []
    execute.output(first, stream("a" * 5000), None, 1)
    execute.output(second, stream("b" * 900), None, 2)
    assert [o.text for o in second] == ["b" * 900]
