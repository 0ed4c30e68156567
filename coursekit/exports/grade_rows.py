"""One row per student from nbgrader's gradebook, the score after the late penalty, for every file that leaves
the course (grades.csv's nbgrader export, the per-part CSV, the Canvas and Moodle imports).

The numbers are the ones `coursekit scores` and grades.csv show: points per group of test cells
(coursekit/exports/scores.py), nbgrader's raw score, the late penalty nbgrader recorded while grading
(coursekit/course/late.py), and the final score `max(0, raw - penalty)`. A student in the gradebook with no
submission scores 0, as in grades.csv. Names, emails and `lms_user_id` are nbgrader's student records (the
roster import fills them).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from nbgrader.api import MissingEntry

from coursekit import ASSIGNMENT
from coursekit.course.directory import CourseError
from coursekit.course.gradebook import open_gradebook
from coursekit.exports.csv_export import neutralised
from coursekit.exports.scores import GROUPS, by_group


@dataclass(frozen=True)
class StudentGrade:
    student_id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    lms_user_id: str = ""
    groups: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0.0))
    raw: float = 0.0
    penalty: float = 0.0
    submitted: bool = False

    @property
    def final(self) -> float:
        """The score after the late penalty, never below 0 (nbgrader's export and feedback say the same)."""
        return max(0.0, self.raw - self.penalty)


@dataclass(frozen=True)
class Grades:
    students: list[StudentGrade]
    max_score: float
    max_groups: dict[str, float]


def load(db_url: str) -> Grades:
    """Every student of nbgrader's gradebook, with this assignment's scores (0 without a submission)."""
    rows = []
    with open_gradebook(db_url) as gradebook:
        try:
            assignment = gradebook.find_assignment(ASSIGNMENT)
        except MissingEntry:
            raise CourseError(f"the gradebook has no assignment {ASSIGNMENT!r}: run `make release` and "
                              "`make grade` first") from None
        max_cells = {cell.name: float(cell.max_score) for nb in assignment.notebooks for cell in nb.grade_cells}
        for student in gradebook.students:
            record: dict[str, Any] = {
                "student_id": student.id, "first_name": student.first_name or "", "last_name": student.last_name or "",
                "email": student.email or "", "lms_user_id": student.lms_user_id or "",
            }
            try:
                submission = gradebook.find_submission(ASSIGNMENT, student.id)
            except MissingEntry:
                rows.append(StudentGrade(**record))
                continue
            cells = {grade.name: float(grade.score) for nb in submission.notebooks for grade in nb.grades}
            rows.append(StudentGrade(
                **record, groups=by_group(cells), raw=float(submission.score),
                penalty=float(submission.late_submission_penalty or 0), submitted=True,
            ))
        max_score = float(assignment.max_score)
    return Grades(sorted(rows, key=lambda r: r.student_id), max_score, by_group(max_cells))


def plain_decimal(value: float) -> str:
    """A number as importers read it in any locale: digits, at most 2 decimals after a '.', no exponent, no
    thousands separator ("12", "9.5", "0.33"). Canvas compares and shows scores to 2 decimals."""
    text = f"{Decimal(repr(value)).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text in ("-0", "") else text


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A CSV file, quoted where needed; every text cell neutralised (no formula runs in a spreadsheet).

    Numbers are passed in already formatted by plain_decimal, so they are text that starts with a digit and
    neutralising leaves them alone.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow([neutralised(cell) for cell in header])
        for row in rows:
            writer.writerow([neutralised(cell) for cell in row])
