"""The feedback page, as a student sees it in a browser, offline, on a phone (400 px) and a desktop (1280 px).

The pages are the ones the session's `graded` demo course wrote with the kit's own feedback step (the kit's
template, FeedbackPage, TrimTracebacks), opened from disk in headless Chromium. For a correct submission and a
wrong one (`loss_numpy`: a failed check, and crashes of the student's own code inside TensorFlow and
matplotlib), at both widths:

- the summary names each of the 11 checks (group and what it checks, grade id) with the gradebook's points;
- a failed check is marked by colour, an icon and the word "Failed", in the summary and on its cell;
- the math is typeset by the inlined MathJax, and no request leaves the page's own file;
- nothing runs out of the page sideways, no line is cut off, and no cell header's label and score overlap;
- no path of the grading machine shows; every figure has a text alternative.

Screenshots go to artifacts/feedback/. Measured here (2-core VM, loaded): about 10 s once `graded` exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from coursekit import ASSIGNMENT
from coursekit.course.directory import Course
from coursekit.exports import scores

from .conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SHOTS = REPO_ROOT / "artifacts" / "feedback"
CORRECT, WRONG = "correct_reference", "loss_numpy"
WIDTHS = (400, 1280)
ENVIRONMENT = re.compile(r"\.venv|site-packages|dist-packages|/tmp/|/home/|/root/|/usr/lib|ipykernel_")
MARKS = {"passed": ("✓", "Passed"), "partly": ("◐", "Partly"), "failed": ("✗", "Failed")}


@pytest.fixture(scope="module")
def gradebook(graded: Course) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    return scores.cell_scores(graded.db_url), scores.max_cell_points(graded.db_url)


@pytest.fixture
def feedback_page(browser: Browser, graded: Course, request: pytest.FixtureRequest) -> Iterator[tuple[Page, list]]:
    student, width = request.param
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    events: list[str] = []
    page.on("request", lambda r: events.append(f"request {r.url}"))
    page.on("console", lambda m: events.append(f"console {m.type} {m.text}"))
    page.on("pageerror", lambda e: events.append(f"pageerror {e}"))
    path = graded.feedback / student / ASSIGNMENT / f"{ASSIGNMENT}.html"
    page.goto(path.as_uri())
    # Typeset: both display equations of the lab's markdown, and no raw TeX left in the text.
    page.wait_for_function("() => document.querySelectorAll('.MathJax_Display').length >= 2"
                           " && !document.body.innerText.includes('$$')", timeout=30_000)
    try:
        yield page, events
    finally:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SHOTS / f"{student}-{width}px.png")
        if student == WRONG:
            failed = page.locator("div.cell:has(div.panel.ck-failed)").first
            failed.scroll_into_view_if_needed()
            failed.screenshot(path=SHOTS / f"{student}-{width}px-failed-check.png")
            crash = page.locator("div.output_error").last
            crash.screenshot(path=SHOTS / f"{student}-{width}px-own-crash.png")
        context.close()


CASES = [(student, width) for student in (CORRECT, WRONG) for width in WIDTHS]


@pytest.mark.parametrize("feedback_page", CASES, indirect=True, ids=[f"{s}-{w}px" for s, w in CASES])
def test_feedback_page_reads_offline_at_phone_and_desktop_width(
    feedback_page: tuple[Page, list[str]], gradebook: tuple[dict, dict], request: pytest.FixtureRequest
) -> None:
    page, events = feedback_page
    student, width = request.node.callspec.params["feedback_page"]
    got, maxima = gradebook

    # The summary: every check named, with the student's points from the gradebook and its status.
    items = page.locator("#toc li.ck-item")
    assert items.count() == len(maxima) == 11
    seen = set()
    for i in range(items.count()):
        item = items.nth(i)
        grade_id = item.get_attribute("data-grade-id")
        seen.add(grade_id)
        text = item.inner_text()
        group = scores.group_of(grade_id)
        score, points = got[student][grade_id], maxima[grade_id]
        assert f"{group}:" in text and grade_id in text and "Test cell" not in text, text
        assert re.search(r":\s*\S+\s+\S+", text.split(grade_id)[0]), f"no description of what it checks: {text}"
        assert f"{score:g} / {points:g} points" in text, text
        status = "failed" if score == 0 else "passed" if score == points else "partly"
        icon, word = MARKS[status]
        badge = item.locator(".ck-status")
        assert badge.inner_text().split() == [icon, word]
        assert f"ck-{status}" in (badge.get_attribute("class") or "")
        # The cell itself says the same, in its heading.
        heading = page.locator(f"div.panel.ck-{status}:has(code:text-is('{grade_id}')) .panel-heading")
        assert heading.count() == 1 and word in heading.inner_text()
    assert seen == set(maxima)

    statuses = [items.nth(i).get_attribute("class") for i in range(items.count())]
    if student == CORRECT:
        assert all("ck-passed" in s for s in statuses)
        assert "Failed" not in page.locator("#toc").inner_text()
    else:
        failed = page.locator("#toc li.ck-failed .ck-status")
        assert failed.count() >= 1 and page.locator("div.panel.ck-failed").count() == failed.count()
        # Not by colour alone, but by colour too: a failure's badge differs from a pass's.
        colour = failed.first.evaluate("e => getComputedStyle(e).backgroundColor")
        passed = page.locator("#toc li.ck-passed .ck-status").first.evaluate(
            "e => getComputedStyle(e).backgroundColor")
        assert colour != passed

    # Offline: the page's own file is all it loads; MathJax ran without complaint.
    requests = [e.removeprefix("request ") for e in events if e.startswith("request ")]
    assert requests and all(url == page.url for url in requests), requests
    assert not [e for e in events if e.startswith(("pageerror", "console error"))], events
    assert page.locator(".MathJax_Display .MathJax").count() >= 2

    # Nothing wider than the screen, no line cut off, no heading's label under its score.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    cut = page.evaluate("""() => [...document.querySelectorAll('pre')]
        .filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.innerText.slice(0, 80))""")
    assert cut == []
    overlaps = page.evaluate("""() => [...document.querySelectorAll('div.nbgrader_cell > .panel-heading')].filter(h => {
        const a = h.querySelector('.nbgrader-label'), b = h.querySelector('.ck-score');
        if (!a || !b) return false;
        const r = a.getBoundingClientRect(), s = b.getBoundingClientRect();
        return r.left < s.right && s.left < r.right && r.top < s.bottom && s.top < r.bottom;
    }).map(h => h.innerText)""")
    assert overlaps == []

    # No path of the grading machine, in what shows or in the page's source.
    text = page.locator("body").inner_text()
    assert not ENVIRONMENT.search(text), ENVIRONMENT.search(text)
    html = page.content()
    assert not ENVIRONMENT.search(html) and str(REPO_ROOT) not in html

    # Every figure has a text alternative.
    alts = page.evaluate("[...document.images].map(i => i.alt)")
    assert len(alts) >= 4 and all(alt.strip() for alt in alts), alts

    if student == WRONG:
        # The student's crashes: their own cells' frames and the error, the libraries as one line.
        crashes = page.locator("div.output_error").all_inner_texts()
        own = [c for c in crashes if "Traceback (most recent call last)" in c]
        assert own, crashes
        assert any(re.search(r"… \d+ frames? inside tensorflow", c) for c in own), own
        assert any(re.search(r"… \d+ frames? inside matplotlib", c) for c in own), own
        assert all("Cell In[" in c for c in own)

