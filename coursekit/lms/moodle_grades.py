"""The Moodle grade import CSV (Grades → Import → CSV file), written to the rules of Moodle's importer
(gradeimport_csv; docs/lms.md lists them):

    Email address,First name,Last name,Custom Training Basics
    jane@example.edu,Jane,Doe,17.5

- the first row names the columns; on import, "Map from" is the identifying column ("Email address", or
  "ID number" with c.LmsExport.moodle_key = "idnumber") and "Map to" the same user field; the grade column is
  mapped to the assignment's grade item (or "new grade item");
- Moodle stops the whole import at a value that matches no user, or more than one: a student without an
  email (ID number) is left out and listed, and two students with the same one are refused;
- a grade is a plain decimal ('.', no thousands separator): Moodle's unformat_float takes it in every language;
  "-" or empty would mean "no grade", which this file never writes (no submission: 0, as in grades.csv).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from coursekit.course.directory import CourseError
from coursekit.exports.grade_rows import Grades, StudentGrade, plain_decimal, write_csv
from coursekit.lms.out_settings import LmsExport

KEY_COLUMNS = {"email": "Email address", "idnumber": "ID number"}


def key_of(student: StudentGrade, settings: LmsExport) -> str:
    return (student.email if settings.moodle_key == "email" else student.student_id).strip()


def header(settings: LmsExport) -> list[str]:
    return [KEY_COLUMNS[settings.moodle_key], "First name", "Last name", settings.moodle_column]


def split(grades: Grades, settings: LmsExport) -> tuple[list[StudentGrade], list[str]]:
    """(students written, ids left out for want of a key); refuses a key two students share."""
    keyed = [s for s in grades.students if key_of(s, settings)]
    counts = Counter(key_of(s, settings).casefold() for s in keyed)
    shared = sorted(s.student_id for s in keyed if counts[key_of(s, settings).casefold()] > 1)
    if shared:
        raise CourseError(f"students share one {KEY_COLUMNS[settings.moodle_key].lower()} (Moodle would give them "
                          f"one grade): {', '.join(shared)}; fix the roster")
    return keyed, [s.student_id for s in grades.students if not key_of(s, settings)]


def rows(grades: Grades, settings: LmsExport) -> list[list[str]]:
    keyed, _ = split(grades, settings)
    return [[key_of(s, settings), s.first_name, s.last_name, plain_decimal(s.final)] for s in keyed]


def write(grades: Grades, settings: LmsExport, path: Path) -> list[str]:
    """Write the file; the student ids left out (no email or ID number)."""
    _, left_out = split(grades, settings)
    write_csv(path, header(settings), rows(grades, settings))
    return left_out
