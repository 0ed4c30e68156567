"""Hidden checks for Custom Training Basics. Never released to students.

Run them against any notebook with `pytest grader_tests --notebook PATH`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

STAND_INS = Path(__file__).with_name("stand_ins.py")
PARTS = ("Model", "loss", "train")


def stand_ins_source(parts: Iterable[str] = PARTS) -> str:
    """The source text of the stand-ins for `parts` only (its imports included), as a probe child receives it.

    A child that observes one part is sent the others' stand-ins, never that part's (coursekit/kernels/probe_child.py).
    """
    text = STAND_INS.read_text(encoding="utf-8")
    wanted = set(parts)
    unknown = wanted - set(PARTS)
    if unknown:
        raise ValueError(f"no stand-in for {', '.join(sorted(unknown))}")
    kept = []
    for node in ast.parse(text).body:
        name = getattr(node, "name", None)
        if isinstance(node, (ast.Import, ast.ImportFrom)) or name in wanted:
            kept.append(ast.get_source_segment(text, node, padded=True))
    return "\n\n\n".join(segment for segment in kept if segment) + "\n"
