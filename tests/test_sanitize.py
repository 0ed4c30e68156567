"""Student-made active content is neutralised (coursekit/steps/sanitize.py; issue 10, finding 4).

Each payload of tests/adversarial/active_content.py, on each channel (outputs of every MIME type, output
metadata, markdown and raw cells, attachments, cell and notebook metadata), goes through the kit's preprocessor
and then through nbconvert with nbgrader's own formgrade and feedback templates, as formgrader and
`nbgrader generate_feedback` render it. The pages must hold no script, handler or active URL of the student's;
the same pages rendered without the preprocessor must hold them all, so the checks can fail. The browser test
(tests/browser/test_active_content.py) opens the real pages in Chromium.
"""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import nbgrader
import nbgrader.preprocessors
import pytest
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from nbformat import NotebookNode
from traitlets.config import Config

from coursekit import ASSIGNMENT
from coursekit.course import cohort
from coursekit.steps.sanitize import ACTIVE_FILE_PATTERNS, SanitizeStudentContent, clean_html, markdown_to_safe_html

from .adversarial import active_content

REPO = Path(__file__).resolve().parents[1]
RELEASE = REPO / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
TEMPLATES = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates"
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "data", "srcdoc", "xlink:href", "background", "poster"}
# Attributes a browser only shows as text: a payload there is inert (a quoted, escaped value).
TEXT_ATTRIBUTES = {"alt", "title"}
ACTIVE_TAGS = {"iframe", "object", "embed", "form", "base", "svg", "math", "frame", "frameset", "applet", "link"}
PAYLOAD = re.compile(r"fromCharCode|PWNED|api/kernels|javascript:|expression\(", re.IGNORECASE)


class ActiveContent(HTMLParser):
    """What in a page could run or load something: scripts, handlers, URLs, active tags, style."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.handlers: list[tuple[str, str, str]] = []
        self._raw: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ACTIVE_TAGS:
            self.found.append(f"<{tag}>")
        if tag == "meta" and any(name == "http-equiv" for name, _ in attrs):
            self.found.append("<meta http-equiv>")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.handlers.append((tag, name, value))
            elif name == "style" and re.search(r"url\(|expression\(|@import", value, re.IGNORECASE):
                self.found.append(f"<{tag} style={value[:60]}>")
            elif name in URL_ATTRIBUTES:
                url = re.sub(r"[\s\x00-\x1f]", "", value).lower()
                if url.startswith(("javascript:", "vbscript:", "data:text", "data:image/svg", "data:application")):
                    self.found.append(f"<{tag} {name}={url[:60]}>")
                if name == "src" and tag == "img" and not url.startswith(("data:image/png", "data:image/jpeg")):
                    self.found.append(f"<img src={url[:60]}>")
            if PAYLOAD.search(value) and name not in TEXT_ATTRIBUTES:
                self.found.append(f"<{tag} {name}=...payload...>")
        if tag in ("script", "style"):
            self._raw = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._raw:
            self._raw = None

    def handle_data(self, data: str) -> None:
        if self._raw and PAYLOAD.search(data):
            self.found.append(f"<{self._raw}> with a payload")


def active(html: str) -> ActiveContent:
    parser = ActiveContent()
    parser.feed(html)
    parser.close()
    return parser


def hostile_notebook() -> NotebookNode:
    """The release, solved, with every payload in outputs (as a kernel would have produced them) and cells."""
    release = nbformat.read(RELEASE, as_version=4)
    student = cohort.Student("hostile", "active content", cohort.MODEL, cohort.LOSS, cohort.TRAIN)
    notebook = cohort.fill(release, student)
    outputs = _outputs_of(active_content.display_code()) + _outputs_of(active_content.HARMLESS_CODE)
    payload = active_content.html_payloads("error")[1]
    outputs.append(nbformat.v4.new_output("error", ename=payload, evalue=payload, traceback=[payload]))
    outputs.append(nbformat.v4.new_output("execute_result", data={"text/html": payload, "text/plain": "x"},
                                          execution_count=3, metadata={"text/html": {"isolated": True}}))
    model = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "model")
    model.outputs = outputs
    active_content.add_markdown(notebook)
    return notebook


def _outputs_of(code: str) -> list[NotebookNode]:
    """The outputs `code` publishes, built without a kernel: its calls recorded by stand-ins."""
    outputs: list[NotebookNode] = []

    def publish(data: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
        outputs.append(nbformat.v4.new_output("display_data", data=data, metadata=metadata or {}))

    def display(obj: Any) -> None:
        outputs.append(nbformat.v4.new_output("display_data", data={"text/html": obj.data}))

    def show(*args: Any) -> None:
        outputs.append(nbformat.v4.new_output("stream", name="stdout", text=" ".join(map(str, args)) + "\n"))

    code = code.replace("from IPython.display import publish_display_data as _publish\n", "")
    code = code.replace("from IPython.display import HTML as _HTML, display as _display\n", "")
    from IPython.display import HTML

    exec(code, {"_publish": publish, "_display": display, "_HTML": HTML, "print": show})
    return outputs


def sanitized(notebook: NotebookNode) -> NotebookNode:
    pre = SanitizeStudentContent(release_root=str(REPO / "release"))
    resources = {"nbgrader": {"assignment": ASSIGNMENT, "notebook": ASSIGNMENT}}
    notebook, _ = pre.preprocess(copy.deepcopy(notebook), resources)
    nbformat.validate(notebook)
    return notebook


def render(notebook: NotebookNode, template: str) -> str:
    config = Config()
    config.HTMLExporter.template_name = template
    config.HTMLExporter.extra_template_basedirs = [str(TEMPLATES)]
    config.HTMLExporter.extra_template_paths = [str(TEMPLATES.parent / "static/node_modules/bootstrap/dist/css")]
    resources = {
        "nbgrader": {"notebook": ASSIGNMENT, "score": 0, "max_score": 19, "late_penalty": 0},
        "base_url": "", "notebook_id": ASSIGNMENT, "assignment_id": ASSIGNMENT, "submission_id": "s1",
        "index": 0, "total": 1, "student": "hostile", "notebook_path": "x.ipynb",
    }
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:  # what nbgrader's GetGrades adds before the feedback template runs
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.metadata.nbgrader["score"] = 0
    html, _ = HTMLExporter(config=config).from_notebook_node(notebook, resources=resources)
    return html


@pytest.fixture(scope="module")
def hostile() -> NotebookNode:
    return hostile_notebook()


@pytest.fixture(scope="module", params=["feedback", "formgrade"])
def template(request: pytest.FixtureRequest) -> str:
    return request.param


def test_the_unsanitized_pages_run_the_payloads(hostile: NotebookNode, template: str) -> None:
    """Without the preprocessor the checks below find every channel: they can fail."""
    page = render(hostile, template)
    found = active(page)
    assert len(found.found) >= 20, found.found
    assert len(found.handlers) >= 5, found.handlers
    for channel in ("output-1", "output-2", "output-javascript", "output-width", "markdown-1", "markdown-2",
                    "markdown-raw-1", "output-md-1", "error-2"):
        assert active_content.script(channel) in page, channel
    assert 'class="isolated-iframe"' in page


def test_sanitized_pages_hold_no_student_script(hostile: NotebookNode, template: str) -> None:
    page = render(sanitized(hostile), template)
    baseline = active(render(nbformat.read(RELEASE, as_version=4), template))
    found = active(page)
    # The templates' own (stylesheets, Bootstrap's CSS names `javascript:` links, formgrader toggles names) stay; the
    # student adds none.
    assert found.found == baseline.found, found.found
    assert len(baseline.found) <= 2  # the stylesheet links formgrader's page loads, or Bootstrap's rule
    assert found.handlers == baseline.handlers
    # The payloads stay readable as text (the solution's source, plain-text outputs): escaped, never markup.
    assert "<script>eval(" not in page


def test_harmless_output_still_shows(hostile: NotebookNode, template: str) -> None:
    page = render(sanitized(hostile), template)
    assert "<table><thead><tr><th>epoch</th><th>loss</th></tr></thead>" in page
    assert "<td>0.25</td>" in page
    # The plain-text output is shown as text, escaped.
    assert "&lt;script&gt;not a tag: plain text is shown as text&lt;/script&gt;" in page
    # A dropped output says what it was.
    assert "[output of type application/javascript not shown: it could run code]" in page


def test_png_figures_and_the_instructors_markdown_are_kept() -> None:
    release = nbformat.read(RELEASE, as_version=4)
    figure = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"},
                                    metadata={"image/png": {"width": 640, "height": 480.0, "needs_background": "light",
                                                            "unconfined": True, "alt": "x"}})
    last_code = max(i for i, cell in enumerate(release.cells) if cell.cell_type == "code")
    release.cells[last_code].outputs = [figure]
    clean = sanitized(release)
    for before, after in zip(nbformat.read(RELEASE, as_version=4).cells, clean.cells, strict=True):
        assert before.source == after.source
    kept = clean.cells[last_code].outputs[0]
    assert kept.data == {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}
    assert kept.metadata == {"image/png": {"width": 640, "height": 480, "needs_background": "light",
                                           "unconfined": True, "alt": "x"}}
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in render(clean, "feedback")


def test_execution_counts_are_numbers(hostile: NotebookNode) -> None:
    """A kernel reports its own execution counts, and the templates print them raw into the `In [ ]:` prompt.

    nbconvert refuses to render such a notebook at all (it fails validation); cleaned, it renders."""
    notebook = copy.deepcopy(hostile)
    model = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "model")
    model.execution_count = active_content.html_payloads("count")[1]
    model.outputs.append(nbformat.from_dict({"output_type": "execute_result", "execution_count": "<b>",
                                             "data": {"text/plain": "x"}, "metadata": {}}))
    with pytest.raises(nbformat.ValidationError):
        render(notebook, "feedback")
    clean = sanitized(notebook)
    assert next(c for c in clean.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "model").execution_count \
        is None
    assert active(render(clean, "feedback")).handlers == []


def test_formgrader_prints_the_student_id_escaped() -> None:
    """formgrader's template prints the id and a path made of it raw, the path inside an attribute."""
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.extra_template_basedirs = [str(TEMPLATES)]
    student = 'x" onmouseover="alert(1)"><img src=x onerror=window.__pwned=1>'
    resources = {"base_url": "", "notebook_id": ASSIGNMENT, "assignment_id": ASSIGNMENT, "submission_id": "s1",
                 "index": 0, "total": 1, "student": student, "first_name": None, "last_name": None,
                 "notebook_path": f"autograded/{student}/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"}
    page, _ = HTMLExporter(config=config).from_notebook_node(nbformat.read(RELEASE, as_version=4), resources=resources)
    baseline = active(render(nbformat.read(RELEASE, as_version=4), "formgrade"))
    assert active(page).handlers == baseline.handlers
    assert "&lt;img src=x onerror=window.__pwned=1&gt;" in page


def test_metadata_keeps_an_allow_list(hostile: NotebookNode) -> None:
    clean = sanitized(hostile)
    assert set(clean.metadata) <= {"kernelspec", "language_info", "coursekit-rejected"}
    for cell in clean.cells:
        assert set(cell.metadata) <= {"nbgrader", "tags", "editable", "deletable"}, cell.metadata
        assert all(re.fullmatch(r"[\w.-]+", tag) for tag in cell.metadata.get("tags", []))
        assert "attachments" not in cell
    solution = next(c for c in clean.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "model")
    assert solution.metadata["tags"] == ["ok-tag"]
    assert "source_hidden" not in str(solution.metadata)


def test_outputs_keep_only_safe_mime_types(hostile: NotebookNode) -> None:
    clean = sanitized(hostile)
    seen = set()
    for cell in clean.cells:
        for output in cell.get("outputs", []):
            seen |= set(output.get("data", {}))
            for mime, meta in output.get("metadata", {}).items():
                assert mime in ("image/png", "image/jpeg")
                assert set(meta) <= {"width", "height", "unconfined", "needs_background", "alt"}
    assert seen <= {"text/plain", "text/html", "image/png", "image/jpeg", "text/latex"}
    assert "application/vnd.coursekit.observation+json" not in seen


@pytest.mark.parametrize("payload", active_content.html_payloads("unit"), ids=lambda p: p[:30])
def test_each_payload_alone_is_neutralised(payload: str) -> None:
    for html in (clean_html(payload), markdown_to_safe_html(payload),
                 markdown2html_mistune(markdown_to_safe_html(payload))):
        found = active(html)
        assert found.found == [] and found.handlers == [], (payload, html)


@pytest.mark.parametrize("markdown", [
    "plain *emphasis* and `a < b`",
    "```python\nif a < b:\n\n    pass\n```",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "$$y = w_{true} \\times x + b_{true}$$ and $x<y$",
    "[wiki](https://en.wikipedia.org/wiki/Gradient_descent) and [top](#top)",
])
def test_markdown_renders_the_same_once_cleaned(markdown: str) -> None:
    """Cleaned markdown is one HTML block: every renderer passes it through as the same HTML, once."""
    safe = markdown_to_safe_html(markdown)
    assert "\n" not in safe
    assert markdown_to_safe_html(safe) == safe
    assert markdown2html_mistune(safe).strip() == safe
    assert active(safe).found == []


def test_links_and_images_are_restricted() -> None:
    html = clean_html('<a href="https://example.org/x">ok</a><a href="#part">in page</a><a href="evil.html">file</a>'
                      '<img src="data:image/png;base64,iVBORw0KGgo="><img src="http://192.0.2.1/track.png">'
                      '<img src="data:image/svg+xml;base64,PHN2Zz4="><a href="data:text/html,x">d</a>')
    assert 'href="https://example.org/x"' in html
    assert 'href="#part"' in html
    assert "evil.html" not in html
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in html
    assert "192.0.2.1" not in html and "svg" not in html and "data:text" not in html


@pytest.mark.parametrize("name", ["evil.html", "EVIL.HTM", "page.xhtml", "x.svg", "a.SvG", "m.mht", "f.xml",
                                  "s.xsl", "j.js", ".hidden.html", "doc.pdf"])
def test_web_pages_are_never_copied_from_a_submission(tmp_path: Path, name: str) -> None:
    from nbgrader.utils import find_all_files

    (tmp_path / name).write_text("<script>alert(1)</script>")
    (tmp_path / "lab_setup.py").write_text("")
    (tmp_path / "data.csv").write_text("")
    files = {Path(f).name for f in find_all_files(str(tmp_path), ACTIVE_FILE_PATTERNS)}
    assert files == {"lab_setup.py", "data.csv"}


def test_the_course_config_sanitizes_every_page() -> None:
    from traitlets.config.loader import PyFileConfigLoader

    from coursekit.steps.judge import JudgeObservations

    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    steps = config.Autograde.autograde_preprocessors
    assert steps.index(JudgeObservations) < steps.index(SanitizeStudentContent)
    assert steps.index(SanitizeStudentContent) < steps.index(nbgrader.preprocessors.SaveAutoGrades)
    # formgrader's page and generate_feedback both render through HTMLExporter.
    exporter = HTMLExporter(config=config)
    assert any(isinstance(p, SanitizeStudentContent) for p in exporter._preprocessors)
    assert set(ACTIVE_FILE_PATTERNS) <= set(config.CourseDirectory.ignore)
    assert config.SanitizeStudentContent.release_root == str(REPO / "release")


@pytest.mark.parametrize("link", ["&#106;avascript:alert(1)", "java\tscript:alert(1)", " javascript:alert(1)",
                                  "java&#x0A;script:alert(1)", "JAVASCRIPT:alert(1)", "vbscript:msgbox(1)",
                                  "//192.0.2.1/x", "\\\\192.0.2.1\\x", "data:text/html,<script>alert(1)</script>",
                                  "da&#9;ta:text/html,x", "d&#10;ata:text/html,x", " DATA:text/html,x",
                                  "../../api/kernels", "/api/kernels", "evil.html"])
def test_no_link_leaves_the_page_for_script_or_the_students_files(link: str) -> None:
    for html in (clean_html(f'<a href="{link}">x</a>'), markdown_to_safe_html(f"[x]({link.replace(' ', '')})")):
        assert "href" not in html, html
