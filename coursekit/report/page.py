"""Render the class report: one self-contained HTML page and its data as CSV files beside it.

The page loads nothing: its figures are PNG in `data:` URLs (matplotlib, Agg), its style is inline, and a
Content-Security-Policy forbids any other source, so it reads the same offline, from a file or an LMS.
Jinja2 (nbgrader's own dependency) renders the template with autoescaping on: student ids and reasons are
text, never markup.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import matplotlib

matplotlib.use("Agg")  # before pyplot: no display here, and none needed
import matplotlib.pyplot as plt

from coursekit import ASSIGNMENT
from coursekit.exports.csv_export import neutralised
from coursekit.exports.scores import GROUPS
from coursekit.report import stats
from coursekit.report.collect import ClassData
from grader_tests.checks import HINTS

TEMPLATE = "report.html.j2"
COLORS = {"full": "#1a7f37", "partial": "#bf8700", "zero": "#cf222e"}
HATCHES = {"full": "", "partial": "//", "zero": "xx"}  # so the parts differ without colour too


@dataclass(frozen=True)
class Figure:
    png: str  # base64
    alt: str


@dataclass(frozen=True)
class Report:
    html: Path
    csv: list[Path]


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def histogram(finals: Sequence[float], maximum: float, summary: stats.Distribution | None) -> Figure | None:
    if summary is None:
        return None
    edges = stats.histogram_bins(maximum)
    figure, axes = plt.subplots(figsize=(7, 3.2))
    counts, _, _ = axes.hist(finals, bins=edges, color="#0969da", edgecolor="white")
    axes.axvline(summary.mean, color="black", linestyle="--", label=f"mean {stats.shown_number(summary.mean)}")
    axes.axvline(summary.median, color="#8250df", linestyle=":", label=f"median {stats.shown_number(summary.median)}")
    axes.set_xlabel(f"score (of {stats.shown_number(maximum)} points)")
    axes.set_ylabel("students")
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.legend(loc="upper left")
    axes.spines[["top", "right"]].set_visible(False)
    bins = ", ".join(f"{stats.shown_number(lo)}–{stats.shown_number(hi)}: {int(n)}"
                     for lo, hi, n in zip(edges, edges[1:], counts, strict=False) if n)
    alt = (f"Histogram of the scores of {summary.count} students, out of {stats.shown_number(maximum)} points: "
           f"mean {stats.shown_number(summary.mean)}, median {stats.shown_number(summary.median)}. "
           f"Students per score range: {bins}.")
    return Figure(_png(figure), alt)


def shares_chart(cells: Sequence[stats.Item]) -> Figure | None:
    cells = [c for c in cells if c.count]
    if not cells:
        return None
    figure, axes = plt.subplots(figsize=(7, 0.45 * len(cells) + 1.2))
    names = [c.name for c in cells][::-1]
    left = [0.0] * len(cells)
    for how, label in (("full", "full points"), ("partial", "partly"), ("zero", "0 points")):
        widths = [100 * (c.share(how) or 0.0) for c in cells][::-1]
        axes.barh(names, widths, left=left, color=COLORS[how], hatch=HATCHES[how], edgecolor="white", label=label)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    axes.set_xlim(0, 100)
    axes.set_xlabel("% of graded students")
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    alt = "Share of graded students with full points on each test cell: " + "; ".join(
        f"{c.name} {stats.shown_number(100 * (c.share('full') or 0), 0)}% full, "
        f"{stats.shown_number(100 * (c.share('zero') or 0), 0)}% 0 points" for c in cells) + "."
    return Figure(_png(figure), alt)


def misconceptions_chart(ranked: Sequence[stats.Misconception], top: int = 15) -> Figure | None:
    shown = list(ranked[:top])
    if not shown:
        return None
    figure, axes = plt.subplots(figsize=(7, 0.4 * len(shown) + 1.0))
    axes.barh([m.hint for m in shown][::-1], [m.count for m in shown][::-1], color="#cf222e")
    axes.set_xlabel("students")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.spines[["top", "right"]].set_visible(False)
    alt = "The most common mistakes, by number of students: " + "; ".join(
        f"{m.hint} ({HINTS.get(m.hint, 'no description')}): {m.count}" for m in shown) + "."
    return Figure(_png(figure), alt)


def _seconds(value: Any) -> str:
    return "–" if not isinstance(value, int | float) else f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def _late_text(seconds: float) -> str:
    if seconds <= 0:
        return ""
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow(header)
        for row in rows:
            # Ids and reasons come from students: a cell a spreadsheet would run as a formula is neutralised.
            writer.writerow([neutralised(value) if isinstance(value, str) else value for value in row])
    return path


def _number(value: float | None, digits: int = 4) -> float | str:
    return "" if value is None else round(value, digits)


def build(data: ClassData, out: Path, now: datetime | None = None) -> Report:
    """Write `out`/<assignment>.html and `out`/<assignment>_*.csv from `data`."""
    out.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now(UTC)
    students = sorted(data.scores)
    maximum = sum(data.max_points.values())
    finals = [data.final(s) for s in students]
    summary = stats.distribution(finals)
    all_items = stats.items(data.scores, data.max_points, data.group_of)
    cells = [i for i in all_items if i.kind == "cell"]
    # The groups as `coursekit scores` lists them (the parts first); cells in notebook order within each.
    groups = sorted((i for i in all_items if i.kind == "group"),
                    key=lambda g: GROUPS.index(g.name) if g.name in GROUPS else len(GROUPS))
    ranked = stats.misconceptions(data.hints)
    late = [(s, data.seconds_late.get(s, 0.0), data.penalties.get(s, 0.0)) for s in students
            if data.seconds_late.get(s, 0.0) > 0 or data.penalties.get(s, 0.0)]

    prefix = out / ASSIGNMENT
    csvs = [
        _write_csv(Path(f"{prefix}_scores.csv"),
                   ["student", *data.max_points, *dict.fromkeys(data.group_of.values()), "total", "late_penalty",
                    "score"],
                   [[s, *(data.scores[s].get(c, 0.0) for c in data.max_points),
                     *(sum(data.scores[s].get(c, 0.0) for c in data.max_points if data.group_of[c] == g)
                       for g in dict.fromkeys(data.group_of.values())),
                     data.total(s), data.penalties.get(s, 0.0), data.final(s)] for s in students]),
        _write_csv(Path(f"{prefix}_summary.csv"), ["statistic", "value"],
                   [["students graded", len(students)], ["max points", maximum],
                    *([] if summary is None else [
                        ["mean", _number(summary.mean)], ["median", _number(summary.median)],
                        ["std (population)", _number(summary.std)], ["min", summary.minimum],
                        ["max", summary.maximum]])]),
        _write_csv(Path(f"{prefix}_items.csv"),
                   ["item", "kind", "group", "max_points", "students", "full", "partial", "zero", "share_full",
                    "share_partial", "share_zero", "mean", "discrimination"],
                   [[i.name, i.kind, i.group, i.max_points, i.count, i.full, i.partial, i.zero,
                     _number(i.share("full")), _number(i.share("partial")), _number(i.share("zero")),
                     _number(i.mean), _number(i.discrimination)] for i in all_items]),
        _write_csv(Path(f"{prefix}_misconceptions.csv"),
                   ["hint", "description", "students", "cells", "who"],
                   [[m.hint, HINTS.get(m.hint, ""), m.count, " ".join(m.cells), " ".join(m.students)]
                    for m in ranked]),
        _write_csv(Path(f"{prefix}_students.csv"), ["student", "status", "why", "seconds_late", "late_penalty"],
                   [*([o.student, o.status, o.why, "", ""] for o in data.outcomes),
                    *([s, "late", _late_text(seconds), round(seconds), penalty] for s, seconds, penalty in late)]),
    ]

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("coursekit.report", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    environment.filters["num"] = stats.shown_number
    environment.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.0f}%"
    run = data.run or {}
    html = environment.get_template(TEMPLATE).render(
        assignment=ASSIGNMENT, generated=now.strftime("%Y-%m-%d %H:%M UTC"), maximum=maximum,
        summary=summary, histogram=histogram(finals, maximum, summary),
        shares=shares_chart(cells), cells=cells, groups=groups,
        ranked=ranked, hints=HINTS, misconception_chart=misconceptions_chart(ranked),
        without_hints=data.without_hints,
        outcomes=data.outcomes, late=[(s, _late_text(sec), p) for s, sec, p in late],
        due=data.due.strftime("%Y-%m-%d %H:%M UTC") if data.due else None, percent_per_day=data.percent_per_day,
        run=run, run_elapsed=_seconds(run.get("elapsed_seconds")),
        run_per_submission=_seconds(run.get("seconds_per_submission")),
        run_steady=_seconds(run.get("steady_seconds_per_submission")),
        run_first=_seconds(run.get("first_grade_after_seconds")),
        run_executing=_seconds(_mean_execution(run)),
        csv_names=[p.name for p in csvs],
    )
    page = Path(f"{prefix}.html")
    page.write_text(html, encoding="utf-8")
    return Report(page, csvs)


def _mean_execution(run: dict[str, Any]) -> float | None:
    students = run.get("students") if isinstance(run.get("students"), dict) else {}
    seconds = [e["execution_seconds"] for e in students.values()
               if isinstance(e, dict) and isinstance(e.get("execution_seconds"), int | float)]
    return sum(seconds) / len(seconds) if seconds else None
