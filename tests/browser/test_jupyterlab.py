"""End-to-end: a student can complete the released notebook in real JupyterLab (issue 3).

Drives JupyterLab in headless Chromium the way a student would: types the three answers into the
cells' editors, runs every cell from the Run menu, reads the visible tests' output and the plots off
the page, and presses nbgrader's Validate button. A second test types a wrong loss and checks that
the student sees the visible test's explanation.

Measured on the 2-core dev box (Debian 12, Chromium 156, JupyterLab 4.6.6, TensorFlow 2.21), November 2026:
  Run All on the solved notebook, from the menu click to the last cell's prompt: 5-7 s (the test prints
  it; run with `pytest -s`). Whole file: about 55-62 s, of which ~6 s start JupyterLab and each test
  spends ~8 s in Validate (nbgrader runs the notebook again in a fresh kernel).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbgrader import __version__ as nbgrader_version
from playwright.sync_api import Locator, Page, expect

from coursekit.course import cohort

from .conftest import REPO_ROOT, LabServer

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# What a student receives: the notebook and any files that come with it (lab_setup.py).
RELEASE_DIR = REPO_ROOT / "release" / "custom_training_basics"
RELEASE_NOTEBOOK = RELEASE_DIR / "custom_training_basics.ipynb"
PASS_TEXT = "All visible tests passed"
# Printed text renders as stdout output; exceptions and tracebacks as stderr output. A traceback quotes the
# test's source, print("All visible tests passed ...") included, so pass messages are looked for in stdout only.
STDOUT_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"]'
STDERR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
STUB_TEXT = "raise NotImplementedError()"

# Bounds on waits for page state. Loading a notebook and starting a kernel take a few seconds; Run All
# and Validate each import TensorFlow in a fresh process and train the model, well under a minute here.
LOAD_TIMEOUT_MS = 60_000
RUN_ALL_TIMEOUT_MS = 120_000
VALIDATE_TIMEOUT_MS = 120_000

# A student's answers: the demo cohort's correct ones, and its summing-instead-of-averaging loss, the
# mistake the loss's visible test is written to explain.
MODEL_SOLUTION = cohort.MODEL + "\n"
LOSS_SOLUTION = cohort.LOSS + "\n"
TRAIN_SOLUTION = cohort.TRAIN + "\n"
WRONG_LOSS = next(s.loss for s in cohort.STUDENTS if s.student_id == "loss_sum") + "\n"

# In the page a code cell's prompt reads "[7]:" once run, "[*]:" while queued or running.
PROMPTS_JS = (
    "[...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim())"
)


def _release_cells() -> list[dict[str, object]]:
    cells = json.loads(RELEASE_NOTEBOOK.read_text())["cells"]
    assert isinstance(cells, list)
    return cells


def _grade_id(cell: dict[str, object]) -> str:
    nbgrader = cell.get("metadata", {}).get("nbgrader", {})  # type: ignore[union-attr]
    return str(nbgrader.get("grade_id", ""))


def _source(cell: dict[str, object]) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else str(source)


def _visible_test_indexes() -> list[int]:
    return [i for i, cell in enumerate(_release_cells()) if _grade_id(cell).startswith("test_")]


def _grade_index(grade_id: str) -> int:
    return next(i for i, cell in enumerate(_release_cells()) if _grade_id(cell) == grade_id)


def _shot(page: Page, artifacts_dir: Path, name: str) -> None:
    page.screenshot(path=artifacts_dir / f"{name}.png", full_page=True)


def _open_notebook(page: Page, lab_server: LabServer, subdir: str) -> str:
    """Copies the release into its own folder, opens it in JupyterLab and waits for an idle kernel."""
    shutil.copytree(RELEASE_DIR, lab_server.root / subdir)
    path = f"{subdir}/{RELEASE_NOTEBOOK.name}"
    # A workspace per test, so JupyterLab does not reopen the other test's notebook (and start its kernel).
    page.goto(lab_server.url(f"/lab/workspaces/{subdir}/tree/{path}"))
    panel = page.locator(".jp-NotebookPanel")
    expect(panel).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    expect(panel.locator(".jp-Notebook .jp-Cell")).to_have_count(len(_release_cells()), timeout=LOAD_TIMEOUT_MS)
    expect(panel.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute(
        "data-status", "idle", timeout=LOAD_TIMEOUT_MS
    )
    return path


def _type_into_stub_cell(page: Page, expected_start: str, text: str) -> None:
    """Replaces the first cell still holding the stub, through its editor, the way a student would."""
    # Pin the cell by position: a locator filtered on the stub text would move on to the next stub
    # as soon as this one is replaced. Only code cells: the intro's markdown mentions the stub too.
    index = page.locator(".jp-Notebook .jp-Cell").evaluate_all(
        "(cells, stub) => cells.findIndex(c =>"
        " c.classList.contains('jp-CodeCell') && c.querySelector('.cm-content')?.textContent.includes(stub))",
        STUB_TEXT,
    )
    assert index >= 0, f"no cell still holds {STUB_TEXT}"
    editor = _cell(page, index).locator(".cm-content")
    # The stubs come in the order model, loss, train: check we are in the cell we think we are.
    expect(editor).to_contain_text(expected_start)
    editor.click()
    # In command mode Control+A would select every cell instead of the editor's text.
    expect(editor).to_be_focused()
    page.keyboard.press("Control+A")
    # insert_text sends the text as one input, not keystroke by keystroke, so CodeMirror's
    # auto-indent on Enter and its bracket auto-closing do not rewrite it.
    page.keyboard.insert_text(text)
    # CodeMirror renders one .cm-line per line of the document.
    lines = editor.locator(".cm-line")
    expect(lines).to_have_count(len(text.rstrip("\n").split("\n")) + 1)
    expect(editor).not_to_contain_text(STUB_TEXT)


def _answer(page: Page, loss_source: str) -> None:
    _type_into_stub_cell(page, "class Model", MODEL_SOLUTION)
    _type_into_stub_cell(page, "def loss", loss_source)
    _type_into_stub_cell(page, "def train", TRAIN_SOLUTION)
    expect(page.locator(".jp-Notebook .jp-CodeCell .cm-content", has_text=STUB_TEXT)).to_have_count(0)


def _run_all(page: Page) -> float:
    """Runs every cell from the Run menu; returns the seconds until no cell is left queued or running."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    started = time.monotonic()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    # Done when the first code cell has an execution count (the run started; a fresh copy has none) and no
    # cell is still queued. Run All marks every cell "[*]" before the kernel can answer the first one, so
    # there is no moment in between that looks finished. Not "wait for [*] to appear, then disappear": a
    # run that fails in its first cell is over before a poll could see the "[*]".
    page.wait_for_function(
        f"(prompts => prompts.length > 0 && /^\\[\\d+\\]:$/.test(prompts[0]) && !prompts.some(p => p.includes('*')))"
        f"({PROMPTS_JS})",
        timeout=RUN_ALL_TIMEOUT_MS,
        polling=200,
    )
    elapsed = time.monotonic() - started
    expect(page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator")).to_have_attribute(
        "data-status", "idle", timeout=RUN_ALL_TIMEOUT_MS
    )
    return elapsed


def _error_texts(page: Page) -> list[str]:
    # textContent, not innerText: the notebook skips rendering cells out of view (content-visibility), and
    # innerText of those is empty.
    return page.locator(f".jp-Notebook {STDERR_OUTPUT}").all_text_contents()


def _cell(page: Page, index: int) -> Locator:
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def _validate(page: Page) -> Locator:
    """Presses nbgrader's Validate toolbar button; returns the results dialog's message."""
    # nbgrader's lab extension adds a ToolbarButton with className "validate-button" to every notebook's
    # toolbar; JupyterLab puts that class on the <jp-button> element itself.
    button = page.locator(".jp-NotebookPanel-toolbar jp-button.validate-button")
    expect(button, "no Validate button: is nbgrader's lab extension installed and enabled?").to_have_text(
        re.compile(r"^\s*Validate\s*$")
    )
    button.click()
    # Wait for any dialog, not only the results: a broken setup shows "Version Mismatch" or "Validation
    # failed" instead, and the test should say so at once rather than time out.
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_be_visible(timeout=VALIDATE_TIMEOUT_MS)
    message = dialog.locator("#validation-message")
    if message.count() == 0:
        pytest.fail(f"Validate showed no results but: {dialog.text_content()}")
    return message


def _close_dialog(page: Page) -> None:
    page.locator(".jp-Dialog .jp-mod-accept").click()
    expect(page.locator(".jp-Dialog")).to_have_count(0)


def _saved_sources(lab_server: LabServer, path: str) -> dict[str, str]:
    notebook = json.loads((lab_server.root / path).read_text())
    return {_grade_id(cell): _source(cell) for cell in notebook["cells"] if _grade_id(cell)}


@pytest.fixture(autouse=True)
def _shut_down_kernels(lab_server: LabServer) -> Iterator[None]:
    yield
    # Even after a failure: the next test should not share the 2 cores with a leftover TensorFlow kernel.
    sessions = lab_server.api("GET", "/api/sessions")
    assert isinstance(sessions, list)
    for session in sessions:
        lab_server.api("DELETE", f"/api/sessions/{session['id']}")


def test_student_completes_release_in_jupyterlab(page: Page, lab_server: LabServer, artifacts_dir: Path) -> None:
    # The Validate button needs nbgrader's server extension too, at the same version as the lab extension.
    version = lab_server.api("GET", f"/nbgrader_version?version={nbgrader_version}")
    assert version == {"success": True}, f"nbgrader's server extension is missing or mismatched: {version}"

    path = _open_notebook(page, lab_server, "solved")
    _shot(page, artifacts_dir, "solved-1-opened")

    _answer(page, LOSS_SOLUTION)
    _shot(page, artifacts_dir, "solved-2-answered")

    seconds = _run_all(page)
    print(f"\nRun All on the solved notebook took {seconds:.1f} s in the browser")
    _shot(page, artifacts_dir, "solved-3-ran-all")

    prompts: list[str] = page.evaluate(PROMPTS_JS)
    assert all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), (
        f"not every cell ran: {prompts}; errors shown: {_error_texts(page)}"
    )
    test_indexes = _visible_test_indexes()
    assert len(test_indexes) >= 10
    for index in test_indexes:
        cell = _cell(page, index)
        expect(cell.locator(STDOUT_OUTPUT)).to_contain_text(PASS_TEXT)
        expect(cell.locator(STDERR_OUTPUT)).to_have_count(0)
    expect(page.locator(STDOUT_OUTPUT, has_text=PASS_TEXT)).to_have_count(len(test_indexes))
    expect(page.locator(STDERR_OUTPUT, has_text="Traceback")).to_have_count(0)
    images = page.locator(".jp-Notebook .jp-RenderedImage img")
    expect(images.first).to_be_visible()
    assert images.count() >= 4, f"expected the lab's 4 plots, found {images.count()} images"

    message = _validate(page)
    _shot(page, artifacts_dir, "solved-4-validated")
    expect(message).to_have_class(re.compile(r"\bvalidation-success\b"))
    expect(message).to_contain_text("Success! Your notebook passes all the tests.")
    _close_dialog(page)

    # Validate saves the notebook first: what reached the disk is what was typed, unchanged by the editor.
    saved = _saved_sources(lab_server, path)
    assert saved["model"].rstrip() == MODEL_SOLUTION.rstrip()
    assert saved["loss"].rstrip() == LOSS_SOLUTION.rstrip()
    assert saved["train"].rstrip() == TRAIN_SOLUTION.rstrip()


def test_wrong_loss_shows_visible_test_failure(page: Page, lab_server: LabServer, artifacts_dir: Path) -> None:
    _open_notebook(page, lab_server, "wrong-loss")
    _answer(page, WRONG_LOSS)

    _run_all(page)
    _shot(page, artifacts_dir, "wrong-loss-1-ran-all")

    loss_test = _cell(page, _grade_index("test_loss_values"))
    error = loss_test.locator(STDERR_OUTPUT)
    expect(error).to_contain_text("AssertionError")
    expect(error).to_contain_text("should be (1 + 0 + 4 + 16) / 4 = 5.25")
    expect(loss_test.locator(STDOUT_OUTPUT, has_text=PASS_TEXT)).to_have_count(0)
    # The loss's other tests and everything after stay unrun: Run All stops at the first error.
    expect(page.locator(STDOUT_OUTPUT, has_text=PASS_TEXT)).to_have_count(
        sum(1 for i in _visible_test_indexes() if i < _grade_index("test_loss_values"))
    )

    # Validate runs the whole notebook again, outside the browser, and must point at the same test.
    message = _validate(page)
    _shot(page, artifacts_dir, "wrong-loss-2-validated")
    expect(message).to_have_class(re.compile(r"\bvalidation-failed\b"))
    expect(message).to_contain_text("The following cell failed")
    expect(message).to_contain_text("should be (1 + 0 + 4 + 16) / 4 = 5.25")
    expect(message).not_to_contain_text("Success!")
    _close_dialog(page)
