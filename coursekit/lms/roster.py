"""Roster in: a Canvas gradebook export or a Moodle participants export → nbgrader's students.

Which column becomes the nbgrader student id (the folder name in submitted/, the key of every grade):

- Canvas (`Student, ID, SIS User ID, SIS Login ID, Section, ...`): the SIS Login ID, else the SIS User ID,
  else the Canvas user ID. `lms_user_id` is the Canvas user ID (the `ID` column), which Canvas writes into
  the names of the files in "Download Submissions", so `coursekit collect` finds each student by it.
- Moodle (`First name, Last name, ID number, Email address, ...`): the ID number, else the part of the email
  address before the @. The participants export holds no Moodle user id, so `lms_user_id` stays empty; the
  submissions archive names students by full name (docs/lms.md).

Every row is untrusted text: an id must pass intake's allow-list (`intake.id_problem`), names and emails
lose control characters and are bounded in length, and a row that cannot be used is refused with its line
number and the reason, never a crash. Formula-like cells (`=cmd|...`) are kept as text: the gradebook stores
them as data, and every CSV the kit writes neutralises them (coursekit/exports/csv_export.py).
The students are written with nbgrader's own `nbgrader db student import`, which adds or updates them.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from coursekit.course.directory import Course, CourseError
from coursekit.engine.intake import id_problem, shown

# A roster of a few thousand students is well under 1 MiB; anything larger is not a roster.
MAX_ROSTER_BYTES = 10 * 1024 * 1024
MAX_FIELD_CHARS = 200  # nbgrader's name and email columns are unbounded strings; a name is never this long
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID")
MOODLE_COLUMNS = ("First name", "Last name")
LMSES = ("canvas", "moodle")


@dataclass(frozen=True)
class Student:
    id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    lms_user_id: str | None


@dataclass
class Roster:
    lms: str
    students: list[Student] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "line N: why", printable (shown)
    skipped: list[str] = field(default_factory=list)  # rows that are not students (Points Possible, Test Student)


def clean(value: str | None) -> str | None:
    """A name or email cell as plain text: NFC, no control or invisible characters, trimmed, bounded; None if empty."""
    if value is None:
        return None
    text = unicodedata.normalize("NFC", value)
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text
                   if unicodedata.category(c) not in ("Cf", "Cs", "Co", "Cn"))
    text = " ".join(text.split())[:MAX_FIELD_CHARS]
    return text or None


def detect(header: list[str]) -> str | None:
    names = {cell.strip() for cell in header}
    if all(column in names for column in CANVAS_COLUMNS):
        return "canvas"
    if all(column in names for column in MOODLE_COLUMNS):
        return "moodle"
    return None


def read_text(path: Path) -> str:
    """The roster file's text (UTF-8, with or without the BOM Canvas and Excel write), bounded in size."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_ROSTER_BYTES + 1)
    except OSError as exc:
        raise CourseError(f"cannot read the roster {shown(str(path))}: {exc.strerror}") from None
    if len(raw) > MAX_ROSTER_BYTES:
        raise CourseError(f"{shown(str(path))} is over {MAX_ROSTER_BYTES // 2**20} MiB: not a roster export")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CourseError(f"{shown(str(path))} is not UTF-8 text (bad byte at offset {exc.start}): export it "
                          "again as CSV (UTF-8)") from None


def parse(text: str, lms: str | None = None) -> Roster:
    """The students in a roster export's `text`; `lms` is detected from the header when None."""
    rows = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = next(rows)
    except StopIteration:
        raise CourseError("the roster is empty") from None
    except csv.Error as exc:
        raise CourseError(f"the roster is not CSV ({exc})") from None
    found = detect(header)
    if lms is None:
        if found is None:
            raise CourseError("the roster's header is neither Canvas's gradebook export (Student, ID, SIS User ID, "
                              "SIS Login ID, ...) nor Moodle's participants export (First name, Last name, ...): "
                              f"it starts '{shown(','.join(header)[:120])}'")
        lms = found
    elif found != lms:
        wanted = CANVAS_COLUMNS if lms == "canvas" else MOODLE_COLUMNS
        raise CourseError(f"the roster's header lacks {lms.capitalize()}'s columns ({', '.join(wanted)})")
    columns = {cell.strip(): index for index, cell in reversed(list(enumerate(header)))}
    roster = Roster(lms)
    ids: dict[str, int] = {}
    lms_ids: dict[str, int] = {}
    try:
        for line, row in enumerate(rows, 2):
            if not any(cell.strip() for cell in row):
                continue
            cells = {name: row[index] if index < len(row) else "" for name, index in columns.items()}
            try:
                student = _canvas_row(cells, roster) if lms == "canvas" else _moodle_row(cells)
            except _Refused as exc:
                roster.refused.append(f"line {line}: {exc}")
                continue
            if student is None:
                what = row[0].strip() or " ".join(cell.strip() for cell in row if cell.strip())
                roster.skipped.append(f"line {line}: {shown(what[:60])}")
                continue
            problem = id_problem(student.id)
            if problem:
                roster.refused.append(f"line {line}: student id '{shown(student.id)}' refused: {problem}")
                continue
            if student.id in ids:
                roster.refused.append(f"line {line}: student id '{shown(student.id)}' is already on line "
                                      f"{ids[student.id]}: refused")
                continue
            if student.lms_user_id and student.lms_user_id in lms_ids:
                roster.refused.append(f"line {line}: {lms.capitalize()} user {student.lms_user_id} is already on "
                                      f"line {lms_ids[student.lms_user_id]}: refused")
                continue
            ids[student.id] = line
            if student.lms_user_id:
                lms_ids[student.lms_user_id] = line
            roster.students.append(student)
    except csv.Error as exc:
        raise CourseError(f"the roster is not valid CSV ({exc}): nothing imported") from None
    return roster


class _Refused(Exception):
    """A row that names a student who cannot be imported; the message says why."""


def _raw_id(value: str) -> str:
    # Ids keep every character but surrounding spaces, so that id_problem sees (and refuses) what the LMS holds.
    return unicodedata.normalize("NFC", value.strip())


def _canvas_row(cells: dict[str, str], roster: Roster) -> Student | None:
    name = cells.get("Student", "").strip()
    # Canvas puts the maximum points on a row of its own ("    Points Possible"), and a "Student, Test" row for the
    # test student the Student View creates; neither is a student.
    # A posting-policy row ("Manual Posting" under each assignment) has no name and no ID.
    if name == "Points Possible" or (name == "Student, Test" and not cells.get("SIS Login ID", "").strip()) \
            or not (name or cells.get("ID", "").strip()):
        return None
    canvas_id = cells.get("ID", "").strip()
    if not canvas_id.isascii() or not canvas_id.isdigit():
        raise _Refused(f"the Canvas ID '{shown(canvas_id[:40])}' is not a number")
    student_id = _raw_id(cells.get("SIS Login ID", "")) or _raw_id(cells.get("SIS User ID", "")) or canvas_id
    last, _, first = name.partition(",")  # Canvas writes "Last, First"
    return Student(student_id, clean(first), clean(last), None, canvas_id)


def _moodle_row(cells: dict[str, str]) -> Student | None:
    email = clean(cells.get("Email address"))
    if email and (email.count("@") != 1 or " " in email):
        email = None
    student_id = _raw_id(cells.get("ID number", ""))
    if not student_id and email:
        student_id = email.split("@")[0]
    if not student_id:
        raise _Refused("no ID number and no email address: no student id")
    return Student(student_id, clean(cells.get("First name")), clean(cells.get("Last name")), email, None)


IMPORT_COLUMNS = ("id", "first_name", "last_name", "email", "lms_user_id")


def import_roster(course: Course, roster: Roster) -> None:
    """Add or update `roster`'s students in the course's gradebook with `nbgrader db student import`."""
    with tempfile.TemporaryDirectory(prefix="coursekit-roster-") as scratch:
        path = Path(scratch) / "students.csv"
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(IMPORT_COLUMNS)
            for student in roster.students:
                writer.writerow([getattr(student, column) or "" for column in IMPORT_COLUMNS])
        env = course.environment()
        env["PYTHONUTF8"] = "1"  # nbgrader opens the CSV with the locale's encoding: names are unicode
        course.nbgrader("db", "student", "import", os.fspath(path), quiet=not course.verbose, env=env)


def run(course: Course, path: Path, lms: str | None) -> Roster:
    roster = parse(read_text(path), lms)
    if roster.students:
        import_roster(course, roster)
    return roster
