"""The report's numbers, from plain data: no gradebook, no files, so each is tested on known inputs.

- the score distribution: count, mean, median, standard deviation (population: the class is the whole
  population, not a sample of one), minimum and maximum;
- each item (a test cell, or a group of them): the share of students with full, partial and no points, and
  its discrimination: the Pearson correlation of the item's score with the total score, the total including
  the item, as PrairieLearn's assessment statistics report it (for an item scored all or nothing this is the
  point-biserial correlation). It is undefined (None, shown as "–") with fewer than two students or when the
  item's scores or the totals are all equal;
- misconceptions: hint ids ranked by how many students had them, with those students.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# Scores are sums of floats such as 0.5: compare with a tolerance.
EPSILON = 1e-9


@dataclass(frozen=True)
class Distribution:
    count: int
    mean: float
    median: float
    std: float
    minimum: float
    maximum: float


def distribution(values: Sequence[float]) -> Distribution | None:
    """None for an empty class."""
    if not values:
        return None
    return Distribution(
        count=len(values), mean=statistics.fmean(values), median=float(statistics.median(values)),
        std=statistics.pstdev(values), minimum=float(min(values)), maximum=float(max(values)),
    )


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """The Pearson correlation of xs and ys; None when undefined (under two pairs, or either constant)."""
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} values against {len(ys)}")
    if len(xs) < 2:
        return None
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    dx = [x - mean_x for x in xs]
    dy = [y - mean_y for y in ys]
    sxx, syy = sum(d * d for d in dx), sum(d * d for d in dy)
    if sxx <= EPSILON or syy <= EPSILON:
        return None
    r = sum(a * b for a, b in zip(dx, dy, strict=True)) / math.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))  # rounding can step just outside [-1, 1]


@dataclass(frozen=True)
class Item:
    """One test cell or group: how many students got it fully right, partly, not at all; its discrimination."""

    name: str
    kind: str  # "cell" or "group"
    group: str
    max_points: float
    count: int
    full: int
    partial: int
    zero: int
    mean: float | None
    discrimination: float | None

    def share(self, how: str) -> float | None:
        """The share (0-1) of students with `how` ("full", "partial", "zero"); None for no student."""
        return getattr(self, how) / self.count if self.count else None


def item(name: str, kind: str, group: str, max_points: float, scores: Sequence[float],
         totals: Sequence[float]) -> Item:
    """`scores`: each student's points on the item; `totals`: the same students' totals, in the same order."""
    full = sum(1 for s in scores if s >= max_points - EPSILON and max_points > 0)
    zero = sum(1 for s in scores if s <= EPSILON)
    return Item(
        name=name, kind=kind, group=group, max_points=max_points, count=len(scores),
        full=full, zero=zero, partial=len(scores) - full - zero,
        mean=statistics.fmean(scores) if scores else None,
        discrimination=pearson(scores, totals),
    )


def items(scores: Mapping[str, Mapping[str, float]], max_points: Mapping[str, float],
          group_of: Mapping[str, str]) -> list[Item]:
    """Every cell (in `max_points` order) and every group (in order of first cell), over the students of `scores`.

    `scores`: {student: {grade_id: points}}; a cell a student has no score for counts as 0.
    """
    students = sorted(scores)
    totals = [sum(scores[s].get(cell, 0.0) for cell in max_points) for s in students]
    result = [item(cell, "cell", group_of[cell], points, [scores[s].get(cell, 0.0) for s in students], totals)
              for cell, points in max_points.items()]
    groups = list(dict.fromkeys(group_of[cell] for cell in max_points))
    for group in groups:
        cells = [cell for cell in max_points if group_of[cell] == group]
        result.append(item(group, "group", group, sum(max_points[c] for c in cells),
                           [sum(scores[s].get(c, 0.0) for c in cells) for s in students], totals))
    return result


@dataclass(frozen=True)
class Misconception:
    hint: str
    students: tuple[str, ...]
    cells: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.students)


def misconceptions(hints: Mapping[str, Mapping[str, Iterable[str]]]) -> list[Misconception]:
    """Hint ids ranked by the number of students behind each (most first, then by id).

    `hints`: {student: {grade_id: [hint ids of that cell]}}. A student counts once per hint, however many
    cells reported it.
    """
    students: dict[str, set[str]] = {}
    cells: dict[str, set[str]] = {}
    for student, by_cell in hints.items():
        for cell, ids in by_cell.items():
            for hint in ids:
                students.setdefault(hint, set()).add(student)
                cells.setdefault(hint, set()).add(cell)
    ranked = [Misconception(hint, tuple(sorted(who)), tuple(sorted(cells[hint]))) for hint, who in students.items()]
    return sorted(ranked, key=lambda m: (-m.count, m.hint))


def histogram_bins(maximum: float) -> list[float]:
    """Bin edges for a score histogram from 0 to `maximum`: whole points, at most 20 bins."""
    if maximum <= 0:
        return [0.0, 1.0]
    width = max(1.0, math.ceil(maximum / 20))
    edges = [i * width for i in range(math.ceil(maximum / width) + 1)]
    if edges[-1] < maximum:
        edges.append(edges[-1] + width)
    return [float(e) for e in edges]


def shown_number(value: float | None, digits: int = 2) -> str:
    """A number as the page and the CSV show it; "–" when undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
