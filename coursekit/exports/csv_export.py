"""`nbgrader export` to CSV, safe to open in a spreadsheet: nbgrader's own exporter writes cells as they are.

nbgrader's CsvExportPlugin joins the fields with commas, unquoted: an id with a comma or a quote shifts the
columns, and an id such as `=HYPERLINK(...)` is a formula when the file is opened in Excel or LibreOffice.
This one writes the same columns and rows with Python's csv module (quoted as needed) and neutralises every
text cell that a spreadsheet would read as a formula (OWASP's "CSV injection" advice): a cell that starts
with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`. Numbers the gradebook computed are
written as numbers. nbgrader_config.py makes it the exporter of every `nbgrader export` run in this course.
"""

from __future__ import annotations

import csv
from typing import Any

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin

COLUMNS = ("assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email", "raw_score",
           "late_submission_penalty", "score", "max_score")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralised(value: Any) -> str | float:
    """A cell's value: numbers as they are; text that a spreadsheet would run as a formula, prefixed with '."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


class SafeCsvExportPlugin(ExportPlugin):
    """nbgrader's CSV export (the same columns, one row per student and assignment), quoted and neutralised."""

    def export(self, gradebook: Gradebook) -> None:
        dest = self.to or "grades.csv"
        students = {str(s) for s in self.student}
        assignments = {str(a) for a in self.assignment}
        self.log.info("Exporting grades to %s", dest)
        with open(dest, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for assignment in gradebook.assignments:
                if assignments and assignment.name not in assignments:
                    continue
                for student in gradebook.students:
                    if students and student.id not in students:
                        continue
                    writer.writerow([neutralised(v) for v in self._row(gradebook, assignment, student)])

    @staticmethod
    def _row(gradebook: Gradebook, assignment: Any, student: Any) -> list[Any]:
        try:
            submission = gradebook.find_submission(assignment.name, student.id)
        except MissingEntry:  # nothing submitted: zero, as nbgrader's exporter has it
            timestamp, raw, penalty, score = None, 0.0, 0.0, 0.0
        else:
            timestamp, raw = submission.timestamp, submission.score
            penalty = submission.late_submission_penalty
            score = max(0.0, raw - penalty)
        return [assignment.name, assignment.duedate, timestamp, student.id, student.last_name,
                student.first_name, student.email, raw, penalty, score, assignment.max_score]
