"""The feedback page's data and template, without a browser (tests/browser/test_feedback_page.py has one).

The page is rendered as `nbgrader generate_feedback` renders it: the course's nbgrader_config.py (its template
folders and the kit's preprocessors), on the release notebook with scores as nbgrader's GetGrades sets them.
"""

from __future__ import annotations

import base64
import copy
import re

import nbformat
import pytest
from nbconvert import HTMLExporter
from nbformat import NotebookNode
from traitlets.config.loader import PyFileConfigLoader

from coursekit.exports import scores
from coursekit.steps.feedback_page import FIGURE_ALT, FeedbackPage, check_summary, mathjax_scripts, status_of
from coursekit.steps.trim_tracebacks import TrimTracebacks

from .test_sanitize import RELEASE, REPO, TEMPLATES, active, hostile_notebook, sanitized

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n not really").decode()


def _release() -> NotebookNode:
    return nbformat.read(RELEASE, as_version=4)


def _graded(notebook: NotebookNode, failed: set[str]) -> NotebookNode:
    """Scores as GetGrades leaves them: full points, 0 for `failed`, half for a `partly_` prefix."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        info = cell.metadata.get("nbgrader", {})
        if info.get("grade"):
            info["score"] = 0 if info["grade_id"] in failed else (
                info["points"] / 2 if f"partly_{info['grade_id']}" in failed else info["points"])
    return notebook


def render(notebook: NotebookNode) -> str:
    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    # What GenerateFeedback sets.
    config.HTMLExporter.template_name = "feedback"
    config.HTMLExporter.extra_template_paths = [str(TEMPLATES.parent / "static/node_modules/bootstrap/dist/css")]
    exporter = HTMLExporter(config=config)
    for step in config.GenerateFeedback.preprocessors:
        if step in (TrimTracebacks, FeedbackPage):
            exporter.register_preprocessor(step(), enabled=True)
    total = sum(c.metadata.nbgrader.get("score", 0) for c in notebook.cells
                if c.metadata.get("nbgrader", {}).get("grade"))
    resources = {"nbgrader": {"notebook": "custom_training_basics", "assignment": "custom_training_basics",
                              "score": total, "max_score": 19, "late_penalty": 0}}
    html, _ = exporter.from_notebook_node(notebook, resources=resources)
    return html


@pytest.mark.parametrize(("score", "points", "status"), [
    (2, 2, "passed"), (0, 2, "failed"), (1, 2, "partly"), (0.5, 1, "partly"), (None, 2, "failed"), (3, 2, "passed"),
])
def test_status(score: float | None, points: float, status: str) -> None:
    assert status_of(score, points) == status


def test_every_test_cell_has_a_group_and_says_what_it_checks() -> None:
    cells = [c for c in _graded(_release(), set()).cells if c.metadata.get("nbgrader", {}).get("grade")]
    summaries = [check_summary(c) for c in cells]
    assert len(summaries) == 11
    for summary in summaries:
        assert summary["group"] == scores.group_of(summary["grade_id"])
        assert summary["kind"] == "Check" and summary["status"] == "passed"
        assert summary["checks"] and not summary["checks"].startswith(("#", "Visible tests"))
    assert summaries[2]["checks"] == "The loss's value"


def test_figures_get_a_text_alternative() -> None:
    notebook = _release()
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in notebook.cells}
    figure = nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})
    for grade_id in FIGURE_ALT:
        by_id[grade_id].outputs = [copy.deepcopy(figure)]
    # A student's own figure in their Model cell, and one with the student's own alt text in their loss cell.
    by_id["model"].outputs = [copy.deepcopy(figure)]
    own = copy.deepcopy(figure)
    own.metadata = {"image/png": {"alt": "my loss curve"}}
    by_id["loss"].outputs = [own]
    by_id["plot_history"].outputs[0].metadata = {"image/png": {"alt": "a student's text on the lab's figure"}}
    notebook, resources = FeedbackPage().preprocess(notebook, {})
    for grade_id, alt in FIGURE_ALT.items():
        assert by_id[grade_id].outputs[0].metadata["image/png"]["alt"] == alt
    assert by_id["model"].outputs[0].metadata["image/png"]["alt"] == (
        "A figure drawn by cell model, checked by “The model's variables”.")
    assert by_id["loss"].outputs[0].metadata["image/png"]["alt"] == "my loss curve"
    assert len(resources["coursekit_feedback"]["checks"]) == 11


def test_mathjax_is_inlined_whole_and_fetches_nothing() -> None:
    scripts = mathjax_scripts()
    assert scripts.count("<script") == scripts.count("</script>") == 5
    assert "MathJax.Ajax.Preloading(" in scripts and '"[MathJax]/extensions/Safe.js"' in scripts
    assert '"webFont": null' in scripts and '"extensions": ["Safe.js"]' in scripts
    assert not re.search(r"<script[^>]*\ssrc=", scripts)


def test_the_page_names_and_marks_each_check_and_loads_nothing() -> None:
    page = render(_graded(_release(), {"test_loss_values", "partly_test_train_step"}))
    items = re.findall(r'<li class="ck-item ck-(\w+)" data-grade-id="(\w+)"', page)
    assert len(items) == 11
    assert dict((g, s) for s, g in items)["test_loss_values"] == "failed"
    assert dict((g, s) for s, g in items)["test_train_step"] == "partly"
    assert [s for s, _ in items].count("passed") == 9
    assert "Test cell" not in page
    # In the summary and in the cell's heading: an icon and a word.
    assert len(re.findall(r'class="ck-status ck-failed"><span[^>]*class="ck-icon"[^>]*>✗</span> Failed', page)) == 2
    assert len(re.findall(r'class="ck-status ck-partly"><span[^>]*class="ck-icon"[^>]*>◐</span> Partly', page)) == 2
    assert re.search(r'<meta content="width=device-width, initial-scale=1" name="viewport"/>', page)
    assert not re.search(r"<(script|link|img)[^>]*\s(src|href)=\"?(https?:)?//", page)  # no CDN, nothing remote
    assert "cdnjs" not in page and "MathJax.Hub" in page


def test_the_kit_template_adds_no_student_script() -> None:
    """test_sanitize's hostile notebook, through the kit's template: only the page's own (MathJax) scripts."""
    page = render(_graded(sanitized(hostile_notebook()), set()))
    baseline = render(_graded(sanitized(_release()), set()))
    assert active(page).found == active(baseline).found
    assert active(page).handlers == active(baseline).handlers
    assert "<script>eval(" not in page


def test_formgrader_loads_the_servers_own_mathjax_not_a_cdn() -> None:
    # formgrader's exporter: the course config over formgrader's own template name (its config file wins).
    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    config.HTMLExporter.template_name = "formgrade"
    resources = {"base_url": "/user/x", "notebook_id": "custom_training_basics",
                 "assignment_id": "custom_training_basics", "submission_id": "s1", "index": 0, "total": 1,
                 "student": "s", "notebook_path": "x.ipynb", "first_name": None, "last_name": None}
    html, _ = HTMLExporter(config=config).from_notebook_node(_graded(_release(), set()), resources=resources)
    sources = re.findall(r'<script[^>]*\ssrc="([^"]*)"', html)
    assert "../../../static/jupyter_server_mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe" in sources
    assert not [s for s in sources if "mathjax" in s.lower() and "//" in s], sources
