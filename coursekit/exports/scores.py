"""Scores from nbgrader's gradebook, per student and per group of test cells."""

from __future__ import annotations

from collections.abc import Iterable

from coursekit import ASSIGNMENT
from coursekit.course.gradebook import open_gradebook
from coursekit.engine.intake import shown

GROUPS: tuple[str, ...] = ("model", "loss", "train", "convergence", "plot")


def group_of(grade_id: str) -> str:
    for group in GROUPS:
        if grade_id.startswith(f"test_{group}"):
            return group
    raise ValueError(f"grade cell {grade_id!r} belongs to no group of {GROUPS}")


def cell_scores(db_url: str) -> dict[str, dict[str, float]]:
    """{student: {grade_id: score}} for every autograded submission."""
    scores: dict[str, dict[str, float]] = {}
    with open_gradebook(db_url) as gradebook:
        for submission in gradebook.assignment_submissions(ASSIGNMENT):
            cells: dict[str, float] = {}
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    cells[grade.name] = float(grade.score)
            scores[submission.student_id] = cells
    return scores


def late_penalties(db_url: str) -> dict[str, float]:
    """{student: points taken off for lateness}, as nbgrader recorded them (its export and feedback subtract them)."""
    penalties: dict[str, float] = {}
    with open_gradebook(db_url) as gradebook:
        for submission in gradebook.assignment_submissions(ASSIGNMENT):
            penalties[submission.student_id] = sum(
                float(notebook.late_submission_penalty or 0) for notebook in submission.notebooks
            )
    return penalties


def max_cell_points(db_url: str) -> dict[str, float]:
    with open_gradebook(db_url) as gradebook:
        notebook = gradebook.find_assignment(ASSIGNMENT).notebooks[0]
        return {cell.name: float(cell.max_score) for cell in notebook.grade_cells}


def by_group(cells: dict[str, float]) -> dict[str, float]:
    totals = dict.fromkeys(GROUPS, 0.0)
    for grade_id, score in cells.items():
        totals[group_of(grade_id)] += score
    return totals


def table(
    scores: dict[str, dict[str, float]], max_points: dict[str, float], students: Iterable[str],
    penalties: dict[str, float] | None = None,
) -> str:
    """A plain-text table: one row per student, one column per group, then the total.

    With any late penalty, a "late" column before the total, which is then the score after the penalty
    (nbgrader's export and feedback show the same).
    """
    maxima = by_group(max_points)
    late = penalties if penalties and any(penalties.values()) else None
    header = ["student", *(f"{g} /{maxima[g]:g}" for g in GROUPS), *(["late"] if late else []),
              f"total /{sum(maxima.values()):g}"]
    rows = []
    for student in students:
        groups = by_group(scores.get(student, {}))
        penalty = late.get(student, 0.0) if late else 0.0
        late_cells = [f"-{penalty:g}" if penalty else "0"] if late else []
        # The id is a student's folder name: escaped, so it cannot print a fake row.
        rows.append([shown(student), *(f"{groups[g]:g}" for g in GROUPS), *late_cells,
                     f"{round(max(0.0, sum(groups.values()) - penalty), 2):g}"])  # never below 0, as every export
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
