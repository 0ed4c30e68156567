"""The class report: its statistics on known inputs, the hint ids it counts, and the page and CSV it writes.

Fast (no kernel, no gradebook) but for the one slow test at the end, which builds the report of the graded demo
course (the session fixture `graded`) and checks its CSV against the gradebook.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest

from coursekit import ASSIGNMENT, cli
from coursekit.course import cohort
from coursekit.course.directory import Course
from coursekit.engine import grading
from coursekit.engine.routes import REPLAY_KEY
from coursekit.exports import scores
from coursekit.report import stats
from coursekit.report.collect import ClassData, Outcome, collect, read_hints
from coursekit.report.page import build
from coursekit.steps import judge, sanitize
from coursekit.steps.preprocessors import ReplayExecution
from grader_tests import checks

from .conftest import EXTRA_STUDENTS

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- statistics


def test_distribution_of_known_scores() -> None:
    d = stats.distribution([1.0, 2.0, 3.0, 4.0])
    assert d is not None
    assert (d.count, d.mean, d.median, d.minimum, d.maximum) == (4, 2.5, 2.5, 1.0, 4.0)
    assert d.std == pytest.approx(math.sqrt(1.25))  # population: mean of squared deviations (2.25+.25+.25+2.25)/4


def test_distribution_edge_cases() -> None:
    assert stats.distribution([]) is None
    one = stats.distribution([7.5])
    assert one is not None and (one.count, one.mean, one.median, one.std) == (1, 7.5, 7.5, 0.0)
    same = stats.distribution([3.0, 3.0, 3.0])
    assert same is not None and same.std == 0.0 and same.median == 3.0


def test_pearson_known_values() -> None:
    assert stats.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert stats.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # Point-biserial by its own formula: (M1 - M0) / s_n * sqrt(p q), s_n the population std of the totals.
    item, totals = [1, 0, 1, 1, 0], [9.0, 4.0, 7.0, 10.0, 5.0]
    m1, m0 = (9 + 7 + 10) / 3, (4 + 5) / 2
    s_n = stats.distribution(totals).std
    assert stats.pearson(item, totals) == pytest.approx((m1 - m0) / s_n * math.sqrt(3 / 5 * 2 / 5))


def test_pearson_undefined() -> None:
    assert stats.pearson([], []) is None
    assert stats.pearson([1.0], [5.0]) is None  # one student
    assert stats.pearson([2.0, 2.0, 2.0], [1.0, 5.0, 9.0]) is None  # everyone scored the same on the item
    assert stats.pearson([0.0, 1.0], [3.0, 3.0]) is None  # all totals equal
    with pytest.raises(ValueError):
        stats.pearson([1.0], [1.0, 2.0])


MAX = {"test_a_one": 2.0, "test_a_two": 1.0, "test_b_one": 3.0}
GROUPS = {"test_a_one": "a", "test_a_two": "a", "test_b_one": "b"}


def test_items_shares_and_discrimination() -> None:
    scores_ = {
        "ann": {"test_a_one": 2.0, "test_a_two": 1.0, "test_b_one": 3.0},
        "bob": {"test_a_one": 1.0, "test_a_two": 0.0, "test_b_one": 3.0},
        "cy": {"test_a_one": 0.0, "test_a_two": 0.0, "test_b_one": 0.0},
        "dee": {"test_a_one": 2.0, "test_a_two": 1.0},  # no score for test_b_one: 0
    }
    by_name = {i.name: i for i in stats.items(scores_, MAX, GROUPS)}
    assert [i.name for i in stats.items(scores_, MAX, GROUPS)] == ["test_a_one", "test_a_two", "test_b_one", "a", "b"]
    a1 = by_name["test_a_one"]
    assert (a1.count, a1.full, a1.partial, a1.zero) == (4, 2, 1, 1)
    assert (a1.share("full"), a1.share("partial"), a1.share("zero")) == (0.5, 0.25, 0.25)
    assert a1.mean == 1.25
    totals = [6.0, 4.0, 0.0, 3.0]  # ann, bob, cy, dee
    assert a1.discrimination == pytest.approx(stats.pearson([2.0, 1.0, 0.0, 2.0], totals))
    group_a = by_name["a"]
    assert (group_a.max_points, group_a.full, group_a.partial, group_a.zero) == (3.0, 2, 1, 1)
    b = by_name["test_b_one"]
    assert (b.full, b.partial, b.zero) == (2, 0, 2)


def test_items_of_one_student_or_equal_scores_have_no_discrimination() -> None:
    one = stats.items({"solo": {"test_a_one": 1.0, "test_a_two": 1.0, "test_b_one": 0.0}}, MAX, GROUPS)
    assert all(i.discrimination is None for i in one)
    assert all(i.count == 1 for i in one)
    equal = stats.items({s: dict(MAX) for s in ("x", "y", "z")}, MAX, GROUPS)
    assert all(i.discrimination is None and i.share("full") == 1.0 for i in equal)
    assert stats.shown_number(None) == "–"
    assert stats.items({}, MAX, GROUPS)[0].share("full") is None


def test_misconceptions_ranked_with_students() -> None:
    ranked = stats.misconceptions({
        "ann": {"test_loss_values": ["loss.sum_instead_of_mean"], "test_loss_properties": []},
        "bob": {"test_loss_values": ["loss.sum_instead_of_mean"], "test_train_step": ["train.gradients_swapped"]},
        # The same mistake in two cells counts the student once.
        "cy": {"test_train_step": ["train.gradients_swapped"], "test_train_state": ["train.gradients_swapped"]},
        "dee": {"test_model_output": ["model.bias_missing"]},
    })
    assert [(m.hint, m.count) for m in ranked] == [
        ("loss.sum_instead_of_mean", 2), ("train.gradients_swapped", 2), ("model.bias_missing", 1)]
    assert ranked[1].students == ("bob", "cy")
    assert ranked[1].cells == ("test_train_state", "test_train_step")
    assert stats.misconceptions({}) == []


def test_shown_numbers_and_bins() -> None:
    assert [stats.shown_number(v) for v in (2.5, 3.0, 1 / 3, -0.0001, None)] == ["2.5", "3", "0.33", "0", "–"]
    assert stats.histogram_bins(15) == [float(i) for i in range(16)]
    assert stats.histogram_bins(45)[-1] >= 45 and len(stats.histogram_bins(45)) <= 21
    assert stats.histogram_bins(0) == [0.0, 1.0]


# ---------------------------------------------------------------- hint ids


def test_every_failure_raised_has_a_described_hint_id() -> None:
    source = (REPO / "grader_tests" / "checks.py").read_text()
    raised = set(re.findall(r'hint(?:_id)?=?,? ?"([a-z0-9_]+\.[a-z0-9_]+)"', source))
    raised |= set(re.findall(r'"([a-z]+\.[a-z0-9_]+)"\)', source))  # the (message, id) pairs of the hint tables
    raised |= {"cell.tampered", "cell.not_run", "record.malformed", *judge._STOPPED_HINTS.values()}
    raised |= {f"{checks.area(g)}.{end}" for g in checks.GRADE_IDS for end in ("not_implemented", "raises")}
    assert len(raised) > 50
    assert raised - set(checks.HINTS) == set()
    assert all(sanitize.HINT_ID.fullmatch(hint) for hint in checks.HINTS)
    assert judge.HINTS_KEY == sanitize.HINTS_KEY


def test_every_check_failure_is_raised_with_an_id() -> None:
    tree = ast.parse((REPO / "grader_tests" / "checks.py").read_text())
    raised = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
              and isinstance(node.func, ast.Name) and node.func.id == "CheckFailure"]
    assert len(raised) > 40
    assert [node.lineno for node in raised if not any(k.arg == "hint" for k in node.keywords)] == []


def _number(value: float) -> dict[str, object]:
    return {"shape": [], "size": 1, "data": [value]}


def test_judge_names_the_mistake_by_id() -> None:
    # loss([1, 2, 3, 4], [2, 2, 5, 0]): the sum of the squared errors is 21, their mean 5.25.
    summed = checks.judge("test_loss_values", {"known": _number(21.0)})
    assert not summed.passed and summed.hint == "loss.sum_instead_of_mean"
    assert checks.judge("test_loss_values", {"known": _number(99.0)}).hint == "loss.wrong_value"
    assert checks.judge("test_loss_values", {"raised": {"message": "x", "not_implemented": True}}).hint \
        == "loss.not_implemented"
    assert checks.judge("test_train_step", {"raised": {"message": "x", "not_implemented": False}}).hint \
        == "train.raises"
    assert checks.judge("test_model_output", []).hint == "record.malformed"  # type: ignore[arg-type]
    assert judge.hint_ids("test_loss_values", [{"known": _number(21.0)}]) == ["loss.sum_instead_of_mean"]
    assert judge.hint_ids("test_loss_values", []) == ["cell.not_run"]
    assert judge.hint_ids("test_loss_values", [{}, {}]) == ["cell.tampered"]
    assert judge.hint_ids("test_loss_values", [{}], cleared=True) == ["cell.tampered"]


def _test_cell(grade_id: str, metadata_extra: dict[str, object]) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("observe('x', globals())")
    cell.metadata = nbformat.from_dict({"nbgrader": {"grade": True, "solution": False, "grade_id": grade_id,
                                                     "points": 1, "locked": True}, **metadata_extra})
    return cell


def test_sanitize_keeps_hint_ids_on_test_cells_only() -> None:
    good = _test_cell("test_loss_values", {"coursekit": {"hints": ["loss.sum_instead_of_mean"]}})
    forged_elsewhere = nbformat.v4.new_code_cell("x = 1", metadata={"coursekit": {"hints": ["loss.halved"]}})
    malformed = [
        _test_cell("test_loss_values", {"coursekit": {"hints": ["<script>alert(1)</script>"]}}),
        _test_cell("test_loss_values", {"coursekit": {"hints": "loss.halved"}}),
        _test_cell("test_loss_values", {"coursekit": {"hints": ["loss.halved"] * 11}}),
        _test_cell("test_loss_values", {"coursekit": ["loss.halved"]}),
    ]
    nb = nbformat.v4.new_notebook(cells=[good, forged_elsewhere, *malformed])
    sanitize.SanitizeStudentContent().preprocess(nb, {})
    assert nb.cells[0].metadata["coursekit"] == {"hints": ["loss.sum_instead_of_mean"]}
    assert all("coursekit" not in cell.metadata for cell in nb.cells[1:])


def test_the_writer_takes_hint_ids_from_the_worker_on_test_cells_only(tmp_path: Path) -> None:
    def notebook(hints: bool) -> nbformat.NotebookNode:
        extra = {"coursekit": {"hints": ["loss.halved"]}} if hints else {}
        plain = nbformat.v4.new_code_cell("x = 1", metadata=dict(extra))
        return nbformat.v4.new_notebook(cells=[plain, _test_cell("test_loss_values", extra)])

    worker = tmp_path / "worker.ipynb"
    nbformat.write(notebook(hints=True), worker)
    mine = notebook(hints=False)
    mine.cells[0].metadata["coursekit"] = {"hints": ["planted.by_student"]}
    ReplayExecution().preprocess(mine, {REPLAY_KEY: {"sha256": "0" * 64, "executed": str(worker)}})
    assert "coursekit" not in mine.cells[0].metadata
    assert mine.cells[1].metadata["coursekit"] == {"hints": ["loss.halved"]}


def test_read_hints_from_an_autograded_notebook(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[
        _test_cell("test_loss_values", {"coursekit": {"hints": ["loss.sum_instead_of_mean", "not an id"]}}),
        _test_cell("test_loss_properties", {"coursekit": {"hints": []}}),
        _test_cell("test_unknown_cell", {"coursekit": {"hints": ["loss.halved"]}}),
    ])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    cells = {"test_loss_values": 2.0, "test_loss_properties": 1.0}
    assert read_hints(path, cells) == {"test_loss_values": ["loss.sum_instead_of_mean"], "test_loss_properties": []}
    nbformat.write(nbformat.v4.new_notebook(cells=[_test_cell("test_loss_values", {})]), path)
    assert read_hints(path, cells) is None  # graded before hint ids were recorded
    assert read_hints(tmp_path / "missing.ipynb", cells) is None


# ---------------------------------------------------------------- the run record


def test_run_record_keeps_students_of_earlier_runs(tmp_path: Path) -> None:
    course = Course(tmp_path)
    first = grading.Summary(total=3, graded=["ann", "bob"], failed={"cy": ("worker crashed", "boom")},
                            blank={"bob": "no custom_training_basics.ipynb in the submission"},
                            execution_seconds={"ann": 4.0, "bob": 2.0}, elapsed=30.0)
    grading.write_run_record(course, first, "2 local workers")
    second = grading.Summary(total=1, graded=["cy"], execution_seconds={"cy": 5.0}, elapsed=10.0)
    grading.write_run_record(course, second, "2 local workers")
    record = json.loads((tmp_path / grading.RUN_RECORD).read_text())
    assert (record["submissions"], record["graded"], record["failed"], record["elapsed_seconds"]) == (1, 1, 0, 10.0)
    assert record["seconds_per_submission"] == 10.0
    assert record["students"]["ann"] == {"outcome": "graded", "execution_seconds": 4.0}
    assert record["students"]["bob"]["outcome"] == "graded blank"
    assert record["students"]["cy"] == {"outcome": "graded", "execution_seconds": 5.0}
    datetime.fromisoformat(record["started"])


# ---------------------------------------------------------------- the page


def _class(students: dict[str, dict[str, float]], **extra: object) -> ClassData:
    base: dict[str, object] = dict(
        max_points=MAX, group_of=GROUPS, scores=students, penalties={}, seconds_late={}, submitted_at={},
        due=None, percent_per_day=0.0, hints={}, without_hints=[], outcomes=[], run=None,
    )
    base.update(extra)
    return ClassData(**base)  # type: ignore[arg-type]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_page_of_one_student_is_self_contained_and_shows_undefined_as_dash(tmp_path: Path) -> None:
    data = _class({"solo": {"test_a_one": 2.0, "test_a_two": 0.0, "test_b_one": 1.5}},
                  hints={"solo": {"test_a_two": ["loss.halved"]}},
                  outcomes=[Outcome("=cmd|' /C calc'!A0", "refused id", "<b>not bold</b>")])
    report = build(data, tmp_path, now=datetime(2026, 12, 1, tzinfo=UTC))
    html = report.html.read_text()
    assert report.html.name == f"{ASSIGNMENT}.html"
    assert re.search(r'id="stat-mean">3.5<', html) and re.search(r'id="stat-std">0<', html)
    discrimination = re.findall(r'data-stat="discrimination">([^<]*)<', html)
    assert discrimination and set(discrimination) == {"–"}
    # Nothing to fetch: no URL but data: images, no script.
    assert re.findall(r'(?:src|href)="(?!data:image/png;base64,)', html) == []
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html  # a student's text is escaped
    assert all('alt="' in tag for tag in re.findall(r"<img [^>]*>", html))
    items = {row["item"]: row for row in _rows(tmp_path / f"{ASSIGNMENT}_items.csv")}
    assert items["test_a_one"]["discrimination"] == "" and float(items["test_a_one"]["share_full"]) == 1.0
    students = _rows(tmp_path / f"{ASSIGNMENT}_students.csv")
    assert students[0]["student"].startswith("'=")  # a formula a spreadsheet would run is neutralised
    mistakes = _rows(tmp_path / f"{ASSIGNMENT}_misconceptions.csv")
    assert mistakes == [{"hint": "loss.halved", "description": checks.HINTS["loss.halved"], "students": "1",
                         "cells": "test_a_two", "who": "solo"}]


def test_page_of_no_graded_student(tmp_path: Path) -> None:
    report = build(_class({}), tmp_path)
    assert "No submission is graded yet" in report.html.read_text()
    assert _rows(tmp_path / f"{ASSIGNMENT}_scores.csv") == []


def test_late_penalties_on_the_page_and_in_the_csv(tmp_path: Path) -> None:
    data = _class({"ann": dict(MAX), "bob": dict(MAX)}, penalties={"bob": 1.2}, seconds_late={"bob": 90000.0},
                  due=datetime(2026, 12, 15, 22, 59, tzinfo=UTC), percent_per_day=10.0)
    report = build(data, tmp_path)
    rows = {row["student"]: row for row in _rows(tmp_path / f"{ASSIGNMENT}_scores.csv")}
    assert (rows["bob"]["total"], rows["bob"]["late_penalty"], rows["bob"]["score"]) == ("6.0", "1.2", "4.8")
    html = report.html.read_text()
    assert "2026-12-15 22:59 UTC" in html and "25.0 h" in html
    assert re.search(r'id="stat-mean">5.4<', html)  # (6 + 4.8) / 2, after the penalty


# ---------------------------------------------------------------- the demo course


@pytest.mark.slow
def test_report_of_the_graded_demo_course(graded: Course, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert cli.main(["report", "--out", str(out)], course=graded) == 0
    page = (out / f"{ASSIGNMENT}.html").read_text()
    cells = scores.cell_scores(graded.db_url)
    maxima = scores.max_cell_points(graded.db_url)
    penalties = scores.late_penalties(graded.db_url)

    rows = {row["student"]: row for row in _rows(out / f"{ASSIGNMENT}_scores.csv")}
    assert set(rows) == set(cells) and len(rows) == len(cohort.STUDENTS) + len(EXTRA_STUDENTS)
    for student, by_cell in cells.items():
        for grade_id, points in by_cell.items():
            assert float(rows[student][grade_id]) == points, (student, grade_id)
        for group, points in scores.by_group(by_cell).items():
            assert float(rows[student][group]) == pytest.approx(points)
        assert float(rows[student]["score"]) == pytest.approx(sum(by_cell.values()) - penalties.get(student, 0))

    finals = [sum(by_cell.values()) - penalties.get(s, 0) for s, by_cell in cells.items()]
    summary = {row["statistic"]: row["value"] for row in _rows(out / f"{ASSIGNMENT}_summary.csv")}
    assert float(summary["mean"]) == pytest.approx(sum(finals) / len(finals), abs=1e-4)
    assert f'id="stat-count">{len(finals)}<' in page

    items = {row["item"]: row for row in _rows(out / f"{ASSIGNMENT}_items.csv")}
    for grade_id, points in maxima.items():
        full = sum(1 for by_cell in cells.values() if by_cell[grade_id] == points)
        assert int(items[grade_id]["full"]) == full, grade_id
        assert int(items[grade_id]["students"]) == len(cells)

    # Each honest mistake of the demo cohort is counted under its id, with the students who made it.
    mistakes = {row["hint"]: row for row in _rows(out / f"{ASSIGNMENT}_misconceptions.csv")}
    assert set(mistakes["loss.sum_instead_of_mean"]["who"].split()) == {
        "loss_sum", "loss_sum_and_train_no_learning_rate", "all_parts_wrong"}
    assert mistakes["train.gradients_swapped"]["who"].split() == ["train_swapped_gradients"]
    assert mistakes["model.bias_missing"]["who"].split() == ["model_no_bias"]
    assert "train.learning_rate_ignored" in mistakes
    # The blank release has nothing implemented: its parts are counted as not implemented, never as a mistake.
    assert "blank_release" in mistakes["loss.not_implemented"]["who"].split()
    counts = [int(row["students"]) for row in mistakes.values()]
    assert counts == sorted(counts, reverse=True)
    assert 'data-hint="loss.sum_instead_of_mean"' in page
    assert "graded before the kit recorded mistake ids" not in page  # every autograded notebook holds its ids
    assert len(_rows(out / f"{ASSIGNMENT}_students.csv")) == 0  # none refused, failed, blank or late in the demo

    record = json.loads((graded.root / grading.RUN_RECORD).read_text())
    assert record["graded"] == len(cohort.STUDENTS) + len(EXTRA_STUDENTS) and record["failed"] == 0
    assert record["elapsed_seconds"] > 0 and "The grading run" in page and record["started"] in page


@pytest.mark.slow
def test_students_to_look_at_in_a_released_course(tmp_path: Path) -> None:
    """Refused ids, failures of the last run and ungraded submissions, from intake, the gradebook and the run
    record (nbgrader generate_assignment only: no kernel)."""
    course = Course(REPO).scratch_copy(tmp_path / "course")
    cli.release(course, cli.build_parser().parse_args(["release"]))
    for student in ("ann", "bob", "bad*id"):
        course.submit(student, course.release_notebook)
    failed = grading.Summary(total=2, failed={"ann": ("worker crashed", "KilledWorker: gone")})
    grading.write_run_record(course, failed, "a Dask cluster")
    data = collect(course)
    assert data.scores == {} and list(data.max_points)[:2] == ["test_model_variables", "test_model_output"]
    assert [(o.student, o.status) for o in data.outcomes] == [
        ("bad*id", "refused id"), ("ann", "failed"), ("bob", "not graded")]
    assert "KilledWorker: gone" in data.outcomes[1].why
    page = build(data, tmp_path / "out").html.read_text()
    assert "bad*id" in page and "KilledWorker: gone" in page and "No submission is graded yet" in page
