"""A student's own crash, as the student needs to see it: their frames and the error, no grading machine.

When a student's code fails inside TensorFlow or matplotlib, IPython's traceback lists every library frame
with its file on the grading machine (`/…/.venv/lib/python3.11/site-packages/tensorflow/…`) and pages of
library source. In the feedback that buries the one line that matters, and shows where and how the course
grades. `TrimTracebacks` (a GenerateFeedback step, docs/grading.md "The feedback page") rewrites every error
output of every cell:

- frames of the student's notebook (`Cell In[7], line 3`, `Input In [7]`, `<ipython-input-7-…>`, a cell's
  file `/tmp/ipykernel_<pid>/<hash>.py`) are kept with their source lines;
- each run of other frames becomes one line naming the packages it went through (`… 3 frames inside
  tensorflow (not shown)`), without paths or code;
- the header, the chained-exception notes and the error line stay;
- every absolute path left (in the error message, in warnings printed on stderr, in any printed text or a
  value's repr) is cut to its last component: `/work/c/.venv/…/ops.py` becomes `ops.py`.

The autograded notebook keeps the full traceback: the instructor sees it in formgrader.
ANSI colour codes are kept on the lines kept (the templates turn them into HTML colours).
"""

from __future__ import annotations

import re
from typing import Any

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

__all__ = ["TrimTracebacks", "scrub_paths", "trim_traceback"]

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A notebook cell's frame, as IPython 7 to 9 name it (the frame header, ANSI codes removed).
STUDENT_FRAME = re.compile(
    r"^\s*(?:Cell In\s*\[|Input In \[|<ipython-input-|File <ipython-input-|File \S*/ipykernel_\d+/\d+\.py)"
)
# Any other frame header: `File /path/to/module.py:12, in f(...)`, `File ~/…`, `File <frozen runpy>:88`.
OTHER_FRAME = re.compile(r"^\s*File\s+\S")
# An absolute POSIX path of at least two components (or a home-relative one), not part of a URL or of a
# longer word; `20/3` or `km/h` are not paths (a word character before the slash).
PATH = re.compile(r"(?<![\w/.~:+=-])~?(?:/[^\s/:'\"()\[\],;=<>\x1b]+){2,}/?")
PACKAGES = (re.compile(r"(?:site|dist)-packages/([A-Za-z0-9_.-]+)"),
            re.compile(r"/lib/python\d[\d.]*/([A-Za-z0-9_.-]+)"))


def _plain(text: str) -> str:
    return ANSI.sub("", text)


def scrub_paths(text: str) -> str:
    """`text` with each absolute path cut to its last component (a file's name says enough; folders don't)."""
    def last(match: re.Match[str]) -> str:
        path = match.group(0).rstrip("/")
        return path.rsplit("/", 1)[-1] or path
    return PATH.sub(last, text)


def _package(header: str) -> str:
    for pattern in PACKAGES:  # an installed package first, else the standard library's module
        if match := pattern.search(header):
            return match.group(1).removesuffix(".py").split(".")[0]
    return "other code"


def _collapsed(packages: list[str]) -> str:
    names = list(dict.fromkeys(packages))
    where = " and ".join(names) if len(names) <= 3 else ", ".join(names[:3]) + " and more"
    count = len(packages)
    return f"\x1b[2m… {count} frame{'s' if count != 1 else ''} inside {where} (not shown)\x1b[0m"


def trim_traceback(lines: list[str]) -> list[str]:
    """IPython's traceback entries (one per frame, ANSI coloured), with library frames collapsed and no paths."""
    kept: list[str] = []
    hidden: list[str] = []
    for entry in lines:
        plain = _plain(entry)
        if STUDENT_FRAME.match(plain) or not OTHER_FRAME.match(plain):
            if hidden:
                kept.append(_collapsed(hidden))
                hidden = []
            kept.append(scrub_paths(entry))
        else:
            hidden.append(_package(plain.splitlines()[0] if plain else ""))
    if hidden:
        kept.append(_collapsed(hidden))
    return kept


class TrimTracebacks(NbGraderPreprocessor):  # enabled by default, unlike nbconvert's base
    """Feedback: student frames and the error only; no environment paths in any text output."""

    def preprocess_cell(self, cell: NotebookNode, resources: dict[str, Any], index: int):
        if cell.cell_type != "code":
            return cell, resources
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "error":
                output.traceback = trim_traceback([str(line) for line in output.get("traceback", [])])
                output.evalue = scrub_paths(str(output.get("evalue", "")))
            elif kind == "stream":
                output.text = scrub_paths(str(output.get("text", "")))
            elif kind in ("execute_result", "display_data") and isinstance(output.get("data"), dict):
                # Not HTML: a data: URL's base64 holds slashes.
                for mime in ("text/plain", "text/latex"):
                    if isinstance(output.data.get(mime), str):
                        output.data[mime] = scrub_paths(output.data[mime])
        return cell, resources
