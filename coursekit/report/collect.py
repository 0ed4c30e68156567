"""What the report reads, and from where: only records the grader wrote, never a student's file.

- scores, late penalties, submission times and the due date: nbgrader's gradebook (the numbers
  `coursekit scores` and `make export` show);
- each failed test cell's hint ids: the autograded notebooks, `cell.metadata["coursekit"]["hints"]`, written by
  the judge (coursekit/steps/judge.py) and kept on test cells only (coursekit/steps/sanitize.py);
- who is in submitted/ and not (completely) graded, and whose id is refused: intake and the gradebook,
  as `make grade` decides them;
- who was graded as the blank release or failed, and why, and the run's times: `grading-run.json`, written
  at the end of each `coursekit grade` run (coursekit/engine/grading.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.api import MissingEntry

from coursekit import ASSIGNMENT
from coursekit.course import late
from coursekit.course.directory import Course
from coursekit.course.gradebook import open_gradebook, require_release
from coursekit.engine import completion, intake
from coursekit.engine.grading import RUN_RECORD
from coursekit.exports import scores
from coursekit.steps.sanitize import HINT_ID, HINTS_KEY

NOTEBOOK = f"{ASSIGNMENT}.ipynb"


@dataclass
class Outcome:
    """A student the instructor should look at: not graded, refused, failed or graded blank, and why."""

    student: str
    status: str
    why: str


@dataclass
class ClassData:
    max_points: dict[str, float]
    group_of: dict[str, str]
    scores: dict[str, dict[str, float]]  # graded students: {grade_id: points}
    penalties: dict[str, float]  # points taken off for lateness
    seconds_late: dict[str, float]
    submitted_at: dict[str, datetime | None]
    due: datetime | None
    percent_per_day: float
    hints: dict[str, dict[str, list[str]]]  # graded students: {grade_id: hint ids}
    without_hints: list[str]  # graded by a version of the kit that recorded no hint ids: regrade to count them
    outcomes: list[Outcome] = field(default_factory=list)
    run: dict[str, Any] | None = None

    def total(self, student: str) -> float:
        """Points before any late penalty: the sum of the cells' scores."""
        return sum(self.scores[student].get(cell, 0.0) for cell in self.max_points)

    def final(self, student: str) -> float:
        """The score after the late penalty, as nbgrader's export and feedback show it."""
        return round(self.total(student) - self.penalties.get(student, 0.0), 2)


def read_hints(path: Path, cells: dict[str, float]) -> dict[str, list[str]] | None:
    """{grade_id: hint ids} of the test cells in an autograded notebook; None when it records none."""
    try:
        notebook = nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return None
    found: dict[str, list[str]] = {}
    for cell in notebook.cells:
        meta = cell.get("metadata", {})
        grade_id = (meta.get("nbgrader") or {}).get("grade_id")
        recorded = meta.get(HINTS_KEY)
        if grade_id not in cells or not isinstance(recorded, dict) or not isinstance(recorded.get("hints"), list):
            continue
        found[grade_id] = [h for h in recorded["hints"] if isinstance(h, str) and HINT_ID.fullmatch(h)]
    return found or None


def in_notebook_order(course: Course, cells: dict[str, float]) -> dict[str, float]:
    """`cells` in the order the released notebook asks them (the gradebook's order is its own)."""
    try:
        release = nbformat.read(course.release_notebook, as_version=4)
        order = [(c.get("metadata", {}).get("nbgrader") or {}).get("grade_id") for c in release.cells]
    except (OSError, ValueError):
        order = []
    rank = {grade_id: index for index, grade_id in enumerate(order) if grade_id}
    return dict(sorted(cells.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def run_record(course: Course) -> dict[str, Any] | None:
    path = course.root / RUN_RECORD
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def collect(course: Course) -> ClassData:
    require_release(course)  # a fresh course says what to run, rather than a traceback
    db_url = course.db_url
    max_points = in_notebook_order(course, scores.max_cell_points(db_url))
    graded_cells = scores.cell_scores(db_url)
    found = intake.find(course)
    # Graded: every test cell scored and the autograded notebook on disk, by the assignment as it is now.
    complete = completion.completely_graded(course, sorted(set(found.students) | set(graded_cells)))
    run = run_record(course)
    ran = run.get("students", {}) if run else {}
    ran = ran if isinstance(ran, dict) else {}

    data = ClassData(
        max_points=max_points, group_of={cell: scores.group_of(cell) for cell in max_points},
        scores={s: graded_cells[s] for s in sorted(complete) if s in graded_cells},
        penalties={}, seconds_late={}, submitted_at={}, due=late.due_date(course),
        percent_per_day=float(late.course_config(course).LatePenalty.get("percent_per_day", 0) or 0),
        hints={}, without_hints=[], run=run,
    )
    penalties = scores.late_penalties(db_url)
    with open_gradebook(db_url) as gradebook:
        for student in data.scores:
            try:
                submission = gradebook.find_submission(ASSIGNMENT, student)
            except MissingEntry:
                continue
            data.submitted_at[student] = submission.timestamp
            data.seconds_late[student] = float(submission.total_seconds_late or 0.0)
            data.penalties[student] = penalties.get(student, 0.0)
    for student in data.scores:
        hints = read_hints(course.autograded / student / ASSIGNMENT / NOTEBOOK, max_points)
        if hints is None:
            data.without_hints.append(student)
        else:
            data.hints[student] = hints

    for student, why in sorted(found.refused.items()):
        data.outcomes.append(Outcome(student, "refused id", f"{why}: rename the folder in submitted/"))
    for student in sorted(set(found.students) - complete):
        entry = ran.get(student) if isinstance(ran.get(student), dict) else {}
        if entry.get("outcome") == "failed":
            why = f"{entry.get('why', 'failed')}: {entry.get('detail', '')}".rstrip(": ")
            data.outcomes.append(Outcome(student, "failed", why))
        elif student in graded_cells:
            data.outcomes.append(Outcome(student, "not graded", "graded only in part, or before the assignment "
                                                                "last changed: `make grade` regrades it"))
        else:
            data.outcomes.append(Outcome(student, "not graded", "not graded yet: run `make grade`"))
    for student in data.scores:
        entry = ran.get(student) if isinstance(ran.get(student), dict) else {}
        if entry.get("outcome") == "graded blank":
            data.outcomes.append(Outcome(student, "graded blank", f"0 points: {entry.get('why', '')}"))
        if entry.get("notes"):
            data.outcomes.append(Outcome(student, "graded, noted", "; ".join(map(str, entry["notes"]))))
    return data
