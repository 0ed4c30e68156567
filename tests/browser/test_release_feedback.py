"""formgrader's release-feedback flow, in headless Chromium, on a copy of the graded demo course.

The instructor opens formgrader's Manage Assignments page (nbgrader's server extension, in the course's own
JupyterLab server, started in the course folder as an instructor starts it) and clicks the assignment's two
buttons: "Generate feedback", then "Release feedback". Both succeed, though formgrader runs them with the course's
config, where plain autograde is refused (coursekit/engine/routes.py): the feedback of the student who submitted
through nbgrader's exchange lands in the exchange under nbgrader's name for it, and the log formgrader shows lists
the demo students who did not submit through it. A screenshot of the page goes to artifacts/browser/.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbgrader.utils import notebook_hash
from playwright.sync_api import Browser, Page, expect

from coursekit import ASSIGNMENT, COURSE_ID
from coursekit.engine import intake

from ..conftest import EXCHANGE_STUDENT, ExchangeCourse
from .conftest import LabServer, _free_port, _stop, _wait_until_up

pytestmark = [pytest.mark.slow, pytest.mark.browser]

JUPYTER_DIRS = ("JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR",
                "JUPYTER_DATA_DIR", "IPYTHONDIR")


@pytest.fixture
def course_server(exchange_course: ExchangeCourse, tmp_path: Path, artifacts_dir: Path) -> Iterator[LabServer]:
    """JupyterLab with nbgrader's extensions, in a copy of the course (the test releases feedback there)."""
    course = exchange_course.copy(tmp_path / "copy").course
    home = tmp_path / "instructor-home"
    env = {key: value for key, value in course.environment().items() if not key.startswith(("JUPYTER", "IPYTHON"))}
    for name in JUPYTER_DIRS:
        (home / name.lower()).mkdir(parents=True)
        env[name] = str(home / name.lower())
    env["PATH"] = os.pathsep.join([sysconfig.get_path("scripts"), env.get("PATH", os.defpath)])
    port, token = _free_port(), secrets.token_hex(24)
    log = home / "formgrader.log"
    server = LabServer(base_url=f"http://127.0.0.1:{port}", token=token, root=course.root, log=log)
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
               f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={course.root}"]
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=course.root, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            _wait_until_up(server, process)
            yield server
        finally:
            _stop(process)
            (artifacts_dir / "formgrader-release-feedback.log").write_bytes(log.read_bytes())


def _click_and_wait_for_success(page: Page, row_button: str) -> str:
    """Click one of the assignment row's buttons; formgrader answers with a modal: its text, once it says success."""
    page.locator(f"tr:has-text('{ASSIGNMENT}') td.{row_button} a").click()
    modal = page.locator("#success-modal, #error-modal")
    expect(modal).to_be_visible(timeout=120_000)
    # Bootstrap fades the modal in: read (and photograph) it once it is fully shown.
    page.wait_for_function("() => [...document.querySelectorAll('.modal.in')].some("
                           "m => getComputedStyle(m).opacity === '1')")
    text = modal.inner_text()
    assert page.locator("#success-modal").count() == 1, text
    return text


def _close_modal(page: Page) -> None:
    page.locator("#success-modal .modal-footer button").click()
    expect(page.locator("#success-modal")).to_have_count(0)


def test_release_feedback_from_formgrader(browser: Browser, course_server: LabServer, artifacts_dir: Path) -> None:
    course_root = course_server.root
    outbound = course_root / "exchange" / COURSE_ID / "feedback"
    page_path = course_root / "feedback" / EXCHANGE_STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.html"
    assert not (page_path.parent / intake.SECRET).exists()  # the demo's feedback, from before the student submitted
    started = time.monotonic()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        page.goto(course_server.url("/formgrader/manage_assignments"))
        row = page.locator(f"tr:has-text('{ASSIGNMENT}')")
        expect(row.locator("td.generate-feedback a")).to_be_visible()

        generated = _click_and_wait_for_success(page, "generate-feedback")
        assert f"Successfully generated feedback of '{ASSIGNMENT}'" in generated
        _close_modal(page)
        # Written again, from the regraded submission, with the secret `nbgrader submit` gave it.
        secret = (page_path.parent / intake.SECRET).read_text()

        released = _click_and_wait_for_success(page, "release-feedback")
        page.screenshot(path=artifacts_dir / "formgrader-release-feedback.png", full_page=True)
        assert f"Successfully released feedback of '{ASSIGNMENT}'" in released
        assert "did not submit through it" in released  # the demo students, listed in formgrader's log panel
        name = f"{notebook_hash(secret=secret, notebook_id=ASSIGNMENT)}.html"
        assert [p.name for p in outbound.iterdir()] == [name]
        assert (outbound / name).read_bytes() == page_path.read_bytes()
    finally:
        context.close()
    print(f"formgrader: generate and release feedback in {time.monotonic() - started:.1f} s")
