"""What the feedback page's template (coursekit/templates/feedback/) needs beyond nbgrader's grades.

`FeedbackPage` runs in `nbgrader generate_feedback`, after nbgrader's GetGrades (docs/grading.md, "The
feedback page"). It adds to the notebook's resources, under `coursekit_feedback`:

- `checks`: for each graded cell, by grade id, its group (`coursekit scores`' groups), what it checks (the
  first comment line of the test cell: `# Visible tests: the loss's value.`, from the gradebook's copy of the
  source, which nbgrader restored), the student's points and a status, `passed`, `partly` or `failed`;
- `mathjax`: MathJax 2.7.9 from the `jupyter-server-mathjax` package, inlined as scripts. nbgrader's
  template loads MathJax from a CDN (and ignores `HTMLExporter.mathjax_url`), so offline the math stayed
  raw `$$…$$`. The page is inlined rather than pointing at a folder of MathJax files because nbgrader's
  `release_feedback` hands students the HTML file alone. The inlined part is MathJax.js, the combined
  configuration `TeX-AMS-MML_HTMLorMML-full` (TeX input, HTML-CSS output) and the `Safe` extension (no
  links, styles or ids from student math): about 430 kB a page. Web fonts are not inlined (about 1.7 MB
  more): MathJax draws with the fonts of the reader's system ("generic" fonts), so nothing is fetched.

Every figure (a PNG or JPEG output) gets a text alternative: for the lab's own figure cells, what the
figure shows (FIGURE_ALT); for any other, which cell drew it and the check that follows it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import nbgrader
from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor

from coursekit.exports import scores

__all__ = ["FIGURE_ALT", "TEMPLATE_BASEDIRS", "FeedbackPage", "check_summary", "mathjax_scripts", "status_of"]

RESOURCE_KEY = "coursekit_feedback"
# HTMLExporter's template folders: the kit's (its `feedback` template) before nbgrader's (formgrader's
# `formgrade`, which formgrader's own setting would otherwise give, since the config file's setting wins).
TEMPLATE_BASEDIRS = [
    str(Path(__file__).resolve().parents[1] / "templates"),
    str(Path(nbgrader.__file__).resolve().parent / "server_extensions" / "formgrader" / "templates"),
]
# The lab's figures, by the grade id of the (locked) cell that draws them, as a reader who cannot see them
# needs them described.
FIGURE_ALT = {
    "plot_before_training": "Scatter plot before training: the training data as blue dots and the untrained "
                            "model's predictions as red crosses, output against input x.",
    "plot_history": "Line plot of w (red) and b (blue) after each of the 15 training epochs, with dashed lines "
                    "at the true values w = 3 and b = 2.",
    "plot_test_set": "Scatter plot on the test set: the true outputs as blue dots and the trained model's "
                     "predictions as red crosses, output against input x.",
    "plot_loss_weights": "Two panels: the loss against the value of w (left) and against the value of b "
                         "(right), one point per training epoch.",
}
FIRST_COMMENT = re.compile(r"^\s*#\s*(?:Visible tests\s*:\s*)?(?P<text>.+?)\s*$")
MATHJAX_FILES = ("MathJax.js", "config/TeX-AMS-MML_HTMLorMML-full.js", "extensions/Safe.js")
# As nbconvert's own MathJax macro configures it, plus: no web fonts (not shipped in the page), no menu, and
# nothing fetched. `root` is a folder that does not exist: a TeX extension a student's math asks for (not in
# the combined configuration) fails to load instead of reaching anywhere.
MATHJAX_CONFIG = {
    "root": "coursekit-mathjax-is-inlined",
    "extensions": ["Safe.js"],
    "tex2jax": {
        "inlineMath": [["$", "$"], ["\\(", "\\)"]],
        "displayMath": [["$$", "$$"], ["\\[", "\\]"]],
        "processEscapes": True,
        "processEnvironments": True,
    },
    "TeX": {"equationNumbers": {"autoNumber": "AMS", "useLabelIds": True}},
    "displayAlign": "center",
    "messageStyle": "none",
    "showMathMenu": False,
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": None, "imageFont": None,
                 "linebreaks": {"automatic": True}},
}


@cache
def mathjax_scripts() -> str:
    """MathJax inlined as <script> elements: configuration, MathJax.js, then the files it would fetch."""
    import jupyter_server_mathjax  # the pinned package: its static/ folder is MathJax 2.7.9

    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    sources = {name: (static / name).read_text(encoding="utf-8") for name in MATHJAX_FILES}
    for name, text in sources.items():
        if re.search(r"</script", text, re.IGNORECASE):  # would end the inline element early
            raise ValueError(f"MathJax's {name} holds '</script': cannot be inlined")
    preloaded = ", ".join(json.dumps(f"[MathJax]/{name}") for name in MATHJAX_FILES[1:])
    parts = [
        f"window.MathJax = {json.dumps(MATHJAX_CONFIG)};",
        sources["MathJax.js"],
        # Marks the inlined files as loaded, so MathJax neither requests them nor waits for them.
        f"MathJax.Ajax.Preloading({preloaded});",
        *(sources[name] for name in MATHJAX_FILES[1:]),
    ]
    return "\n".join(f'<script type="text/javascript">\n{part}\n</script>' for part in parts)


def status_of(score: float | None, points: float | None) -> str:
    if not points:
        return "passed" if score is None or score >= 0 else "failed"
    if score is None or score <= 0:
        return "failed"
    return "passed" if score >= points else "partly"


def _what_it_checks(cell: NotebookNode) -> str:
    for line in cell.source.splitlines():
        if line.strip():
            match = FIRST_COMMENT.match(line) if line.lstrip().startswith("#") else None
            if match:
                text = match.group("text").rstrip(".")
                return text[:1].upper() + text[1:]
            break
    return ""


def _group(grade_id: str) -> str:
    try:
        return scores.group_of(grade_id)
    except ValueError:
        return ""


def check_summary(cell: NotebookNode) -> dict[str, Any]:
    """A graded cell as the summary and its heading show it."""
    info = cell.metadata.nbgrader
    score = info.get("score")
    points = info.get("points")
    if cell.cell_type == "code" and not utils.is_solution(cell):
        kind = "Check"
    elif cell.cell_type == "code":
        kind = "Coding free-response"
    else:
        kind = "Written response"
    return {
        "grade_id": info.get("grade_id", ""),
        "kind": kind,
        "group": _group(info.get("grade_id", "")),
        "checks": _what_it_checks(cell) if kind == "Check" else "",
        "score": float(score) if isinstance(score, int | float) else 0.0,
        "points": float(points) if isinstance(points, int | float) else 0.0,
        "status": status_of(score, points),
    }


class FeedbackPage(NbGraderPreprocessor):  # enabled by default, unlike nbconvert's base
    """Names and statuses of the checks, MathJax inlined, and a text alternative for every figure."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]):
        checks: dict[str, dict[str, Any]] = {}
        last_figure_cell = ""
        pending: list[tuple[NotebookNode, str]] = []  # figures waiting for the check that follows them
        for cell in nb.cells:
            info = cell.metadata.get("nbgrader", {})
            grade_id = str(info.get("grade_id", ""))
            if utils.is_grade(cell) or utils.is_task(cell):
                checks[grade_id] = check_summary(cell)
                if checks[grade_id]["checks"]:
                    for output, where in pending:
                        self._set_alt(output, f"{where}, checked by “{checks[grade_id]['checks']}”.")
                    pending = []
            if cell.cell_type != "code":
                continue
            for output in cell.get("outputs", []):
                if not any(mime in output.get("data", {}) for mime in ("image/png", "image/jpeg")):
                    continue
                if grade_id in FIGURE_ALT:
                    self._set_alt(output, FIGURE_ALT[grade_id], replace=True)
                else:
                    last_figure_cell = f"cell {grade_id}" if grade_id else "a cell of yours"
                    pending.append((output, f"A figure drawn by {last_figure_cell}"))
        for output, where in pending:
            self._set_alt(output, f"{where}.")
        resources[RESOURCE_KEY] = {"checks": checks, "mathjax": mathjax_scripts()}
        return nb, resources

    @staticmethod
    def _set_alt(output: NotebookNode, text: str, replace: bool = False) -> None:
        metadata = output.setdefault("metadata", {})
        for mime in ("image/png", "image/jpeg"):
            if mime in output.get("data", {}):
                meta = metadata.setdefault(mime, {})
                if replace or not (isinstance(meta.get("alt"), str) and meta["alt"].strip()):
                    meta["alt"] = text
