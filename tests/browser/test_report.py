"""The class report in headless Chromium: opened from a file, it loads nothing else, logs no error, and the
numbers it shows are the gradebook's (the graded demo course). Keeps a screenshot in artifacts/report.png."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from playwright.sync_api import Page

from coursekit import ASSIGNMENT, cli
from coursekit.course import cohort
from coursekit.course.directory import Course
from coursekit.exports import scores

from ..conftest import EXTRA_STUDENTS

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SCREENSHOT = Path(__file__).resolve().parents[2] / "artifacts" / "report.png"


def _number(text: str) -> float:
    return float(text.strip().rstrip("%"))


def test_report_page_offline_and_matches_the_gradebook(graded: Course, page: Page, tmp_path: Path) -> None:
    assert cli.main(["report", "--out", str(tmp_path)], course=graded) == 0
    html = tmp_path / f"{ASSIGNMENT}.html"
    url = html.as_uri()
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(url, wait_until="load")

    assert errors == []
    assert [r for r in requests if r != url and not r.startswith("data:")] == []
    # Every figure was decoded and drawn, and says what it shows in words.
    images = page.locator("img")
    assert images.count() == 3
    for index in range(images.count()):
        image = images.nth(index)
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
        assert len(image.get_attribute("alt") or "") > 40

    cells = scores.cell_scores(graded.db_url)
    maxima = scores.max_cell_points(graded.db_url)
    penalties = scores.late_penalties(graded.db_url)
    finals = [sum(by_cell.values()) - penalties.get(s, 0.0) for s, by_cell in cells.items()]
    assert int(page.locator("#stat-count").inner_text()) == len(finals) == len(cohort.STUDENTS) + len(EXTRA_STUDENTS)
    assert _number(page.locator("#stat-mean").inner_text()) == pytest.approx(statistics.fmean(finals), abs=0.005)
    assert _number(page.locator("#stat-median").inner_text()) == pytest.approx(statistics.median(finals), abs=0.005)
    assert _number(page.locator("#stat-std").inner_text()) == pytest.approx(statistics.pstdev(finals), abs=0.005)
    assert _number(page.locator("#stat-points").inner_text()) == sum(maxima.values())
    for grade_id, points in maxima.items():
        row = page.locator(f'#items-table tr[data-item="{grade_id}"] td')
        full = sum(1 for by_cell in cells.values() if by_cell[grade_id] == points)
        zero = sum(1 for by_cell in cells.values() if by_cell[grade_id] == 0)
        assert _number(row.nth(3).inner_text()) == round(100 * full / len(cells)), grade_id
        assert _number(row.nth(5).inner_text()) == round(100 * zero / len(cells)), grade_id
    summed = page.locator('#misconceptions-table tr[data-hint="loss.sum_instead_of_mean"]')
    assert summed.locator('[data-stat="count"]').inner_text() == "3"  # loss_sum, loss_sum_and_…, all_parts_wrong
    assert "loss_sum" in summed.inner_text()

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)
