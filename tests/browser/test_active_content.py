"""A hostile submission's scripts never run in formgrader or the feedback page (issue 10, finding 4).

A student's solution cell publishes every payload of tests/adversarial/active_content.py on every MIME channel,
their notebook adds markdown, raw cells and metadata with more, and their submission folder carries web pages
next to the notebook. It is an entry of the hostile catalog, graded (sandboxed, by `coursekit grade`) in the
cohort that tests/test_adversarial.py checks (`hostile` in tests/conftest.py, graded once a session), and
`nbgrader generate_feedback` writes its feedback. Then, in headless Chromium, with the instructor logged in to
the course's own JupyterLab server (nbgrader's formgrader extension, started in the course folder):

- formgrader's view of the submission, and the feedback page (through Jupyter's /files/, from disk, and served
  unsandboxed on the instructor's origin) run no student script: no `window.__pwned`, no title change, no
  console message, no request to /api/kernels, no new kernel;
- the plain HTML table and the lab's PNG figures still show;
- a control: the same notebook rendered without the kit's sanitizer, served at a formgrader address, does run
  the payloads and starts a kernel as the instructor, with the same waits, so the checks above can fail.

Measured here (2-core VM, loaded): the pages a few seconds each, after the shared cohort is graded.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import sysconfig
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from playwright.sync_api import Browser, BrowserContext, Page, expect

from coursekit import ASSIGNMENT, COURSE_ID
from coursekit.course import staleness
from coursekit.course.directory import Course
from coursekit.exports import scores

from ..adversarial import active_content
from ..adversarial.catalog import PAGE_FILES, PAGES_STUDENT
from ..conftest import HostileRun
from ..test_sanitize import active, hostile_notebook, render
from .conftest import LabServer, _free_port, _stop, _wait_until_up

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# The catalog's entry that carries every payload (tests/adversarial/catalog.py), and the web pages handed in
# beside its notebook: none may reach autograded/ or feedback/.
STUDENT, EXTRA_FILES = PAGES_STUDENT, PAGE_FILES
# Payloads run on load or within a few event-loop turns (fetch, ontoggle); the control shows this is enough.
SETTLE_MS = 2_500
KERNEL_LIST_TIMEOUT_S = 60


@dataclass
class Traces:
    """What a student script would leave in a page."""

    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", lambda message: self.console.append(message.text))
        page.on("pageerror", lambda error: self.console.append(str(error)))
        page.on("request", lambda request: self.requests.append(request.url))

    def student_requests(self) -> list[str]:
        return [url for url in self.requests
                if re.search(r"/api/kernels(?:$|[/?])", url) or "192.0.2.1" in url or "evil" in url]


def _settle(page: Page) -> None:
    page.wait_for_load_state("load")
    page.wait_for_timeout(SETTLE_MS)  # absence of an effect: a bounded wait, the same the control passes with


def _pwned(page: Page) -> object:
    return page.evaluate("window.__pwned || null")


def _kernels(server: LabServer) -> list[object]:
    # jupyter_server answers 500 to a listing while a kernel is still starting (its last_activity is unset):
    # ask again until it can answer.
    deadline = time.monotonic() + KERNEL_LIST_TIMEOUT_S
    while True:
        try:
            kernels = server.api("GET", "/api/kernels")
        except urllib.error.HTTPError as error:
            if error.code != 500 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # polling interval
            continue
        assert isinstance(kernels, list)
        return kernels


@pytest.fixture(scope="module")
def graded(hostile: HostileRun) -> Course:
    """The hostile cohort's course (tests/conftest.py): `STUDENT` is one of its catalog entries, graded (sandboxed)
    among the others; the fixture wrote the cohort's feedback."""
    course = hostile.course
    assert hostile.result.returncode == 0, hostile.result.stdout[-3000:] + hostile.result.stderr[-3000:]
    assert not hostile.feedback_error
    return course


@pytest.fixture(scope="module")
def course_server(graded: Course, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path) -> Iterator[LabServer]:
    """JupyterLab with nbgrader's extensions, started in the course folder as an instructor starts formgrader."""
    home = tmp_path_factory.mktemp("instructor-home")
    names = ("JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR",
             "JUPYTER_DATA_DIR", "IPYTHONDIR")
    env = {key: value for key, value in graded.environment().items() if not key.startswith(("JUPYTER", "IPYTHON"))}
    for name in names:
        (home / name.lower()).mkdir()
        env[name] = str(home / name.lower())
    env["PATH"] = os.pathsep.join([sysconfig.get_path("scripts"), env.get("PATH", os.defpath)])
    port, token = _free_port(), secrets.token_hex(24)
    log = home / "formgrader.log"
    server = LabServer(base_url=f"http://127.0.0.1:{port}", token=token, root=graded.root, log=log)
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
               f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={graded.root}"]
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=graded.root, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            _wait_until_up(server, process)
            yield server
        finally:
            _stop(process)
            (artifacts_dir / "formgrader.log").write_bytes(log.read_bytes())


@pytest.fixture(scope="module")
def logged_in(browser: Browser, course_server: LabServer) -> Iterator[BrowserContext]:
    """The instructor's browser: logged in to the course's server, with the cookies a student's script would
    ride on (the login cookie and _xsrf, which opening JupyterLab sets)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    lab = context.new_page()
    lab.goto(course_server.url("/lab"))
    expect(lab.locator("#jp-main-dock-panel")).to_be_visible()
    assert {"_xsrf"} <= {cookie["name"] for cookie in context.cookies()}
    lab.close()  # Lab's own requests stay out of the tests' traces
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def instructor(logged_in: BrowserContext, course_server: LabServer) -> Iterator[tuple[Page, Traces]]:
    """A new tab of the instructor's browser, and what it records."""
    page = logged_in.new_page()
    traces = Traces()
    traces.watch(page)
    try:
        yield page, traces
    finally:
        page.close()
        for kernel in _kernels(course_server):
            course_server.api("DELETE", f"/api/kernels/{kernel['id']}")  # type: ignore[index]


def _submission_url(course: Course) -> str:
    with Gradebook(course.db_url, COURSE_ID) as gradebook:
        submission = gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, STUDENT)
        return f"/formgrader/submissions/{submission.id}/"


def _feedback_file(course: Course) -> Path:
    return course.feedback / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.html"


def _assert_no_student_script(page: Page, traces: Traces, server: LabServer) -> None:
    assert _pwned(page) is None
    assert "PWNED" not in page.title()
    assert not [line for line in traces.console if "PWNED" in line], traces.console
    assert traces.student_requests() == []
    assert _kernels(server) == []


def _assert_harmless_output_shows(page: Page) -> None:
    table = page.locator("table", has_text="epoch").first
    expect(table).to_be_visible()
    expect(table.locator("td", has_text="0.25")).to_be_visible()
    figures = page.locator('img[src^="data:image/png"]')
    assert figures.count() >= 4, f"expected the lab's plots, found {figures.count()}"
    # Real, decoded images, not broken ones.
    widths = figures.evaluate_all("images => images.map(i => i.naturalWidth)")
    assert sum(1 for width in widths if width > 100) >= 4, widths


def test_grading_is_unaffected_and_no_web_page_is_copied(graded: Course) -> None:
    maxima = scores.max_cell_points(graded.db_url)
    assert scores.cell_scores(graded.db_url)[STUDENT] == maxima
    for folder in (graded.autograded, graded.feedback):
        copied = {p.name for p in (folder / STUDENT / ASSIGNMENT).iterdir()}
        assert not copied & set(EXTRA_FILES), copied
    # The autograded notebook itself is clean, wherever it is opened next.
    notebook = nbformat.read(graded.autograded / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    release_text = {c.source for c in nbformat.read(graded.release_notebook, as_version=4).cells}
    for cell in notebook.cells:
        if cell.cell_type != "code" and cell.source not in release_text:
            assert active(cell.source).found == [] and active(cell.source).handlers == [], cell.source[:200]
        for output in cell.get("outputs", []):
            html = output.get("data", {}).get("text/html", "")
            assert active(html).found == [] and active(html).handlers == [], html[:200]
            assert set(output.get("data", {})) <= {"text/plain", "text/html", "image/png", "image/jpeg"}
    # The kit's own stamp (coursekit/course/staleness.py) is written after the sanitizer, by the grader.
    assert set(notebook.metadata) <= {"kernelspec", "language_info", staleness.METADATA_KEY}


def test_jupyter_does_not_trust_the_autograded_notebook(graded: Course, course_server: LabServer) -> None:
    """Nothing in grading signs a student's notebook: opened in Jupyter, its outputs are untrusted."""
    path = (graded.autograded / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").relative_to(graded.root)
    model = course_server.api("GET", f"/api/contents/{path}?content=1")
    assert isinstance(model, dict)
    code_cells = [cell for cell in model["content"]["cells"] if cell["cell_type"] == "code"]
    assert code_cells and not any(cell["metadata"].get("trusted") for cell in code_cells)


def test_formgrader_runs_no_student_script(instructor: tuple[Page, Traces], graded: Course,
                                           course_server: LabServer, artifacts_dir: Path) -> None:
    page, traces = instructor
    page.goto(course_server.url(_submission_url(graded)))
    expect(page.locator(".nbgrader_cell").first).to_be_visible()
    _settle(page)
    page.screenshot(path=artifacts_dir / "formgrader-hostile.png", full_page=True)
    _assert_no_student_script(page, traces, course_server)
    _assert_harmless_output_shows(page)
    # What the markdown payloads were: shown, inert (their text survives, their tags do not).
    expect(page.get_by_text("entity-encoded scheme").first).to_be_attached()
    # MathJax (now served by the Jupyter server, so it runs) keeps each typeset formula's TeX in a
    # <script type="math/tex">: data a browser never executes. Any other script is one too many.
    assert page.locator('#notebook-container script:not([type^="math/tex"])').count() == 0
    assert page.locator("#notebook-container iframe, #notebook-container object, #notebook-container embed,"
                        " #notebook-container form, #notebook-container svg").count() == 0


def test_formgrader_sanitizes_a_notebook_autograded_without_the_kit(
        instructor: tuple[Page, Traces], graded: Course, course_server: LabServer) -> None:
    """formgrader's own exporter cleans too: a notebook graded before (or around) the kit is still inert."""
    path = graded.autograded / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    kept = path.read_bytes()
    notebook = nbformat.read(path, as_version=4)
    model = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "model")
    raw = hostile_notebook()
    model.outputs = next(c for c in raw.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "model").outputs
    notebook.cells[1:1] = list(active_content.markdown_cells("unsanitized"))
    nbformat.write(notebook, path)
    try:
        page, traces = instructor
        page.goto(course_server.url(_submission_url(graded)))
        expect(page.locator(".nbgrader_cell").first).to_be_visible()
        _settle(page)
        _assert_no_student_script(page, traces, course_server)
        expect(page.locator("table", has_text="epoch").first).to_be_visible()
    finally:
        path.write_bytes(kept)


@pytest.mark.parametrize("how", ["jupyter-files", "file-url", "instructor-origin"])
def test_feedback_page_runs_no_student_script(instructor: tuple[Page, Traces], graded: Course,
                                              course_server: LabServer, artifacts_dir: Path, how: str) -> None:
    page, traces = instructor
    feedback = _feedback_file(graded)
    if how == "jupyter-files":  # JupyterLab's "Open in New Browser Tab"
        page.goto(course_server.url(f"/files/{feedback.relative_to(graded.root)}"))
    elif how == "file-url":  # double-clicked on disk
        page.goto(feedback.as_uri())
    else:  # the worst host: the instructor's own origin, no sandbox (as formgrader serves pages)
        url = course_server.url("/formgrader/feedback-page")
        page.route(url, lambda route: route.fulfill(body=feedback.read_bytes(), content_type="text/html"))
        page.goto(url)
    expect(page.locator("#notebook-container").first).to_be_visible()
    _settle(page)
    page.screenshot(path=artifacts_dir / f"feedback-hostile-{how}.png", full_page=True)
    _assert_no_student_script(page, traces, course_server)
    _assert_harmless_output_shows(page)


def test_control_the_unsanitized_page_does_run_student_script(
        instructor: tuple[Page, Traces], graded: Course, course_server: LabServer) -> None:
    """The payloads work on this origin when nothing cleans them: the checks above can fail."""
    page, traces = instructor
    unsanitized = render(hostile_notebook(), "formgrade")
    url = course_server.url("/formgrader/submissions/control/")
    page.route(url, lambda route: route.fulfill(body=unsanitized, content_type="text/html"))
    assert _kernels(course_server) == []
    page.goto(url)
    _settle(page)
    assert _pwned(page), "no payload ran: the control page is broken, so the test proves nothing"
    assert "PWNED" in page.title()
    assert [line for line in traces.console if "PWNED" in line]
    assert traces.student_requests()
    # A script of the student's started a kernel as the instructor: what issue 10 saw.
    assert _kernels(course_server) != []
