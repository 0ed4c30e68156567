"""The Canvas gradebook import CSV (Grades → Import), written to the rules of Canvas's importer
(GradebookImporter in canvas-lms; docs/lms.md lists them):

    Student,ID,SIS User ID,SIS Login ID,Section,Custom Training Basics (123456)
    Points Possible,,,,,19
    "Doe, Jane",4242,,,,17.5

- the header: "Student", "ID", then "SIS User ID" and "SIS Login ID" (Canvas reads both only together), then
  "Section"; Canvas refuses a file whose fifth column is not Section;
- the assignment column is "<title> (<assignment id>)": Canvas takes the number in the last parentheses as the
  assignment's id (a column without it is matched by exact title, or becomes a new assignment); a column
  whose title contains "Current Score", "Final Grade" and the like is dropped by Canvas, so such a title is
  refused here;
- the first data row says "Points Possible" (Canvas reads it for new assignments only);
- each student is found by ID (the Canvas user id, nbgrader's `lms_user_id`), else SIS User ID, else SIS Login
  ID, else by name ("Last, First" or "First Last"): an id that is not all digits is left blank;
- scores are plain decimals with a '.', no thousands separator (Canvas reads "1,5" as 1.5 and "1.234,5" as
  1234.5), at most 2 decimals (Canvas compares scores at 2 decimals).
"""

from __future__ import annotations

import re
from pathlib import Path

from coursekit.course.directory import CourseError
from coursekit.exports.grade_rows import Grades, StudentGrade, plain_decimal, write_csv
from coursekit.lms.out_settings import LmsExport

STUDENT_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
POINTS_POSSIBLE = "Points Possible"
# Canvas drops every header column that contains one of these (they are its computed totals).
CANVAS_COMPUTED_COLUMNS = ("Current Score", "Current Points", "Current Grade", "Final Score", "Final Points",
                           "Final Grade", "Override Score", "Override Grade", "Override Status")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def assignment_column(settings: LmsExport) -> str:
    title, number = settings.title.strip(), settings.canvas_assignment_id
    if not number:
        raise CourseError("no Canvas assignment id: set c.LmsExport.canvas_assignment_id in nbgrader_config.py to "
                          "the number at the end of the Canvas assignment's URL (.../assignments/<id>)")
    if not title or _CONTROL.search(title):
        raise CourseError(f"c.LmsExport.title = {settings.title!r}: the assignment's title must be one line of text")
    dropped = [word for word in CANVAS_COMPUTED_COLUMNS if word in title]
    if dropped:
        raise CourseError(f"c.LmsExport.title = {title!r} contains {dropped[0]!r}: Canvas's importer drops such "
                          "columns as its own totals; choose another title")
    return f"{title} ({number})"


def header(settings: LmsExport) -> list[str]:
    return [*STUDENT_COLUMNS, assignment_column(settings)]


def display_name(student: StudentGrade) -> str:
    """Canvas's sortable name, "Last, First", as its own export writes it; the student id when nbgrader has no name."""
    names = [n for n in (student.last_name.strip(), student.first_name.strip()) if n]
    return ", ".join(names) or student.student_id


def _field(student: StudentGrade, name: str) -> str:
    return {"": "", "student_id": student.student_id, "email": student.email}[name]


def canvas_user_id(student: StudentGrade) -> str:
    value = student.lms_user_id.strip()
    return value if re.fullmatch(r"[0-9]+", value) else ""


def rows(grades: Grades, settings: LmsExport) -> list[list[str]]:
    points = [POINTS_POSSIBLE, "", "", "", "", plain_decimal(grades.max_score)]
    return [points, *([display_name(s), canvas_user_id(s), _field(s, settings.canvas_sis_user_id),
                       _field(s, settings.canvas_sis_login_id), settings.canvas_section, plain_decimal(s.final)]
                      for s in grades.students)]


def unmatched_by_id(grades: Grades) -> list[str]:
    """Students Canvas can find only by SIS id or name: no Canvas user id in the roster."""
    return [s.student_id for s in grades.students if not canvas_user_id(s)]


def write(grades: Grades, settings: LmsExport, path: Path) -> None:
    write_csv(path, header(settings), rows(grades, settings))
