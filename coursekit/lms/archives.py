"""Submissions in: an LMS "download all submissions" zip → submitted/<student>/<assignment>/<assignment>.ipynb.

The archive is untrusted: its entry names can climb out of any folder (`../`, absolute paths), be links, be
huge or decompress to gigabytes, repeat, or name people who are not in the course. So the kit reads the zip
itself, in this process, and decides everything before a byte is written:

1. each entry's name is matched against the LMS's naming (`CANVAS_NAME`, `MOODLE_NAME`), and the LMS user id
   (Canvas) or participant (Moodle) in it is mapped to a student id through the roster in the gradebook;
2. links, unsafe paths, other file types, entries over intake's 20 MiB limit (read with a bound, whatever
   the zip claims), unknown students, ids intake would refuse and students who already have a submission
   (unless `--force`) get a report line each and are left out; of several notebooks from one student one
   is kept, and the report says which;
3. the chosen notebooks are written into a scratch folder outside the course, named as in the archive, with
   a plan (`plan.json`: file → student id and submission time), and nbgrader's own `zip_collect` moves them
   into submitted/ with `CanvasCollector` or `MoodleCollector` (FileNameCollectorPlugin subclasses that match
   the same naming and read the plan), writing `timestamp.txt` when the submission's time is known.

Nothing is written anywhere but that scratch folder and submitted/<student>/<assignment>/. docs/lms.md says
what each LMS's archive holds (Canvas's holds no submission time; Moodle's grading worksheet does).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nbgrader.plugins import FileNameCollectorPlugin

from coursekit import ASSIGNMENT
from coursekit.course.directory import Course, CourseError
from coursekit.engine.intake import MAX_BYTES, NOTEBOOK, id_problem, judge_notebook, shown

MAX_ARCHIVE_BYTES = 4 * 2**30
MAX_ENTRIES = 20_000
PLAN = "plan.json"

# Canvas (lib/content_zipper.rb): "<sortable name, lower-cased, non-word characters removed>[_LATE]_<user id>_
# <attachment id>_<file name>", flat. Canvas takes `_<digits>_` out of names, so the first `_<digits>_<digits>_`
# ends the name. Anonymous grading writes `anon_<id>` instead of the name and the user id.
CANVAS_NAME = re.compile(
    r"^(?P<name>[^/]*?)_(?:(?P<late>late)_)?(?P<lms_user_id>\d+)_(?P<attachment_id>\d+)_(?P<filename>[^/]+)$",
    re.IGNORECASE,
)
CANVAS_ANONYMOUS = re.compile(r"^(?:late_)?anon_[^/_]+_", re.IGNORECASE)
# Moodle (mod/assign/locallib.php, download_submissions): "<full name>_<participant id>_assignsubmission_file_"
# then "/<file>" inside a folder per student (the default since Moodle 3.1), or "<file>" glued on (older, or
# with "Download submissions in folders" off). The participant id is per assignment (assign_user_mapping), not
# the Moodle user id; blind marking writes "Participant" as the name.
MOODLE_NAME = re.compile(
    r"^(?P<name>[^/]+?)_(?P<participant_id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_(?:/(?:[^/]+/)*)?"
    r"(?P<filename>[^/]+)$"
)


@dataclass
class Submission:
    student_id: str
    entry: str  # the name in the archive, as the LMS wrote it
    info: zipfile.ZipInfo  # this entry, and not another of the same name (a zip may repeat names)
    rank: tuple[int, int]  # higher is kept: (named as the release, LMS order)
    timestamp: datetime | None = None
    late: bool = False


@dataclass
class Collected:
    """What `collect` did: students written to submitted/, and one printable line per thing left out."""

    written: dict[str, str] = field(default_factory=dict)  # student id: archive entry
    report: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- the roster, as the archive names students


@dataclass(frozen=True)
class Person:
    id: str
    first_name: str
    last_name: str
    email: str
    lms_user_id: str


def roster_students(course: Course) -> list[Person]:
    from coursekit.course.gradebook import open_gradebook

    if course.db_url.startswith("sqlite:///") and not Path(course.db_url.removeprefix("sqlite:///")).exists():
        raise CourseError("no gradebook yet: import the roster first (`coursekit roster FILE`)")
    with open_gradebook(course.db_url) as gradebook:
        return [Person(s.id, s.first_name or "", s.last_name or "", s.email or "", s.lms_user_id or "")
                for s in gradebook.students]


def name_key(name: str) -> str:
    """A full name as Moodle writes it into a file name, reduced so that a roster name compares equal to it."""
    text = unicodedata.normalize("NFC", name).replace("_", " ")
    text = "".join(c for c in text if c.isalnum() or c.isspace())  # clean_filename drops punctuation
    return " ".join(text.casefold().split())


# ---------------------------------------------------------------- reading the archive's names


def decoded_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as the LMS meant it: zips without the UTF-8 flag are decoded as cp437 by zipfile."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def path_problem(name: str) -> str | None:
    """Why an entry name could write outside the folder it is unpacked into, or None when it is a plain path."""
    if "\\" in name or "\x00" in name:
        return "its name holds a backslash or NUL"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "its name is an absolute path"
    parts = name.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "its name holds an empty, '.' or '..' part"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        return "its name holds a control or invisible character"
    if any(len(part.encode("utf-8", "surrogatepass")) > 255 for part in parts) or len(parts) > 8:
        return "its name is too long or too deep"
    return None


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def worksheet_times(path: Path, people: list[Person], timezone: str, notes: list[str] | None = None,
                    ) -> tuple[dict[str, str], dict[str, datetime]]:
    """From Moodle's grading worksheet: {participant id: student id}, {student id: submission time (UTC, naive)}.

    The worksheet ("Download grading worksheet") names each participant ("Participant 1234567"), their email
    (and ID number when the site shows it) and the submission's "Last modified (submission)", in the timezone
    of the Moodle user who downloaded it.
    """
    from dateutil import parser as dates
    from dateutil import tz

    from coursekit.lms.roster import read_text

    notes = [] if notes is None else notes
    zone = tz.gettz(timezone)
    if zone is None:
        raise CourseError(f"unknown timezone '{shown(timezone)}' (an IANA name such as Europe/Berlin)")
    by_email = {p.email.casefold(): p.id for p in people if p.email}
    ids = {p.id for p in people}
    participants: dict[str, str] = {}
    times: dict[str, datetime] = {}
    try:
        rows = list(csv.DictReader(io.StringIO(read_text(path), newline="")))
    except csv.Error as exc:
        raise CourseError(f"the worksheet is not valid CSV ({exc})") from None
    for row in rows:
        match = re.search(r"(\d+)\s*$", (row.get("Identifier") or "").strip())
        if not match:
            continue
        student = (row.get("ID number") or "").strip()
        student = student if student in ids else by_email.get((row.get("Email address") or "").strip().casefold())
        if not student:
            continue
        participants[match.group(1)] = student
        when = (row.get("Last modified (submission)") or "").strip()
        if not when or when == "-":
            continue
        try:
            parsed = dates.parse(when)
            aware = parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)
            times[student] = aware.astimezone(tz.UTC).replace(tzinfo=None)
        except Exception:  # dateutil raises several unrelated types on odd text: that student has no time
            notes.append(f"{shown(student)}: the worksheet's time '{shown(when[:60])}' is not a date: collected "
                         "without timestamp.txt (graded as on time)")
    return participants, times


# ---------------------------------------------------------------- deciding


def plan(archive: zipfile.ZipFile, lms: str, people: list[Person], existing: set[str], force: bool,
         participants: dict[str, str] | None = None, times: dict[str, datetime] | None = None,
         course_submitted: Path | None = None) -> tuple[dict[str, Submission], list[str]]:
    """Which entry of `archive` becomes which student's submission, and a report line for everything else."""
    report: list[str] = []
    chosen: dict[str, Submission] = {}
    ambiguous: set[str] = set()  # Moodle students with several notebooks and no way to tell which one counts
    by_lms_id = {p.lms_user_id: p.id for p in people if p.lms_user_id}
    by_name: dict[str, set[str]] = {}
    for p in people:
        for full in (f"{p.first_name} {p.last_name}", f"{p.last_name} {p.first_name}"):
            by_name.setdefault(name_key(full), set()).add(p.id)
    entries = archive.infolist()
    if len(entries) > MAX_ENTRIES:
        raise CourseError(f"the archive holds {len(entries)} entries, over the limit of {MAX_ENTRIES}: not an LMS "
                          "submissions download")
    for order, info in enumerate(entries):
        name = decoded_name(info)
        label = shown(name[:160])
        if info.is_dir():
            continue
        problem = path_problem(name)
        if problem:
            report.append(f"{label}: skipped: {problem} (nothing is written outside submitted/)")
            continue
        if _is_link(info):
            report.append(f"{label}: skipped: a symbolic link, not a file")
            continue
        if not name.lower().endswith(".ipynb"):
            report.append(f"{label}: skipped: not a notebook (.ipynb)")
            continue
        if lms == "canvas" and CANVAS_ANONYMOUS.match(name.rsplit("/", 1)[-1]):
            report.append(f"{label}: skipped: anonymous grading hides who sent it; download with anonymity off")
            continue
        match = (CANVAS_NAME if lms == "canvas" else MOODLE_NAME).match(name)
        if not match:
            report.append(f"{label}: skipped: the name does not follow {lms.capitalize()}'s submission naming")
            continue
        late = False
        if lms == "canvas":
            student = by_lms_id.get(match["lms_user_id"])
            late = bool(match["late"])
            if student is None:
                report.append(f"{label}: skipped: Canvas user {match['lms_user_id']} is not in the roster "
                              "(`coursekit roster` the Canvas gradebook export first)")
                continue
            rank_in_lms = int(match["attachment_id"])  # Canvas numbers uploads in order
        else:
            if match["plugin"] != "file":
                report.append(f"{label}: skipped: not a file submission ({shown(match['plugin'])})")
                continue
            student = (participants or {}).get(match["participant_id"])
            if student is None:
                candidates = by_name.get(name_key(match["name"]), set())
                if len(candidates) != 1:
                    why = "no student of that name" if not candidates else "several students of that name"
                    report.append(f"{label}: skipped: {why} in the roster (pass Moodle's grading worksheet "
                                  "with --worksheet to match by participant id)")
                    continue
                student = next(iter(candidates))
            rank_in_lms = -order  # nothing orders Moodle's files: the release's name decides, else refused
        problem = id_problem(student)
        if problem:
            report.append(f"{label}: skipped: student id '{shown(student)}' refused: {problem}")
            continue
        if info.file_size > MAX_BYTES:
            report.append(f"{label}: skipped: {info.file_size / 2**20:.0f} MiB, over the {MAX_BYTES // 2**20} MiB "
                          "limit for a notebook")
            continue
        rank = (int(match["filename"].casefold() == NOTEBOOK.casefold()), rank_in_lms)
        submission = Submission(student, name, info, rank, (times or {}).get(student), late)
        if student in ambiguous:
            report.append(f"{label}: skipped: another notebook of {shown(student)}, who sent several")
            continue
        previous = chosen.get(student)
        if previous is None:
            chosen[student] = submission
            continue
        keep, drop = (submission, previous) if submission.rank > previous.rank else (previous, submission)
        if lms == "moodle" and keep.rank[0] == drop.rank[0]:
            report.append(f"{shown(student)}: skipped: several notebooks ({shown(previous.entry)}, {label}) and "
                          f"none or both named {NOTEBOOK}; copy the right one into submitted/ by hand")
            ambiguous.add(student)
            del chosen[student]
            continue
        chosen[student] = keep
        why = ("named " + NOTEBOOK if keep.rank[0] > drop.rank[0] else "the later upload" if keep.rank > drop.rank
               else "the same name twice in the archive: the first is taken")
        report.append(f"{shown(student)}: {shown(drop.entry)} left out: {shown(keep.entry)} is taken ({why})")
    for student in sorted(chosen):
        submission = chosen[student]
        folder = course_submitted / student if course_submitted else None
        if folder is not None and (folder.is_symlink() or (folder.exists() and not folder.is_dir())):
            report.append(f"{shown(student)}: skipped: submitted/{shown(student)} is a link or not a folder")
            del chosen[student]
        elif student in existing and not force:
            report.append(f"{shown(student)}: skipped: submitted/{shown(student)}/{ASSIGNMENT}/ exists already "
                          "(`--force` replaces it)")
            del chosen[student]
        elif submission.late and submission.timestamp is None:
            report.append(f"{shown(student)}: Canvas marks this submission LATE, but its archive holds no "
                          f"submission time: collected without timestamp.txt (graded as on time; docs/lms.md)")
    return chosen, report


# ---------------------------------------------------------------- writing, through nbgrader's zip_collect


def _existing(course: Course) -> set[str]:
    try:
        return {e.name for e in os.scandir(course.submitted)
                if os.path.lexists(os.path.join(e.path, ASSIGNMENT))}
    except FileNotFoundError:
        return set()


def _open_archive(path: Path) -> zipfile.ZipFile:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise CourseError(f"cannot open the archive {shown(str(path))}: {exc.strerror}") from None
    handle = os.fdopen(fd, "rb")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        handle.close()
        raise CourseError(f"{shown(str(path))} is not a regular file")
    if info.st_size > MAX_ARCHIVE_BYTES:
        handle.close()
        raise CourseError(f"{shown(str(path))} is over {MAX_ARCHIVE_BYTES // 2**30} GiB")
    try:
        return zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        handle.close()
        raise CourseError(f"{shown(str(path))} is not a zip archive ({exc})") from None


def _read_bounded(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> bytes | str:
    """The entry's bytes, or why not: read at most one byte past the limit, whatever sizes the zip declares."""
    try:
        with archive.open(entry) as source:
            data = source.read(MAX_BYTES + 1)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError, ValueError) as exc:
        return f"cannot be unpacked ({type(exc).__name__}: {shown(str(exc)[:120])})"
    if len(data) > MAX_BYTES:
        return f"unpacks to over the {MAX_BYTES // 2**20} MiB limit for a notebook"
    return data


def collect(course: Course, archive_path: Path, lms: str, force: bool = False,
            worksheet: Path | None = None, timezone: str = "UTC") -> Collected:
    people = roster_students(course)
    if not people:
        raise CourseError("the gradebook has no students: import the roster first (`coursekit roster FILE`)")
    worksheet_notes: list[str] = []
    participants, times = worksheet_times(worksheet, people, timezone, worksheet_notes) if worksheet else ({}, {})
    outcome = Collected()
    with _open_archive(archive_path) as archive, tempfile.TemporaryDirectory(prefix="coursekit-collect-") as scratch:
        chosen, outcome.report = plan(archive, lms, people, _existing(course), force, participants, times,
                                       course.submitted)
        outcome.report[:0] = worksheet_notes
        extracted = Path(scratch) / ASSIGNMENT / "extracted"
        extracted.mkdir(parents=True)
        records: dict[str, dict[str, Any]] = {}
        for student, submission in sorted(chosen.items()):
            data = _read_bounded(archive, submission.info)
            name = submission.entry
            if isinstance(data, str):
                outcome.report.append(f"{shown(name[:160])}: skipped: {data}")
                continue
            # zip_collect names the copy after the release plus the file's own extension: make it exactly .ipynb
            staged = name[: -len(".ipynb")] + ".ipynb"
            target = extracted.joinpath(*staged.split("/"))
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                # O_EXCL: two entries never land on one file
                with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb") as out:
                    out.write(data)
            except OSError as exc:
                outcome.report.append(f"{shown(name[:160])}: skipped: cannot be unpacked here ({exc.strerror})")
                continue
            try:
                unusable = judge_notebook(data)[1]
            except Exception as exc:  # intake's own guard: a case it does not foresee costs this line only
                unusable = f"{type(exc).__name__}"
            if unusable:  # collected all the same: it is what the student sent, and grading says why it scores 0
                outcome.report.append(f"{shown(student)}: collected, but intake will grade it as blank (0 points): "
                                      f"{shown(unusable)}")
            records[staged] = {"student_id": student,
                             "timestamp": submission.timestamp.isoformat(sep=" ") if submission.timestamp else None}
            outcome.written[student] = name
        if records:
            (Path(scratch) / ASSIGNMENT / PLAN).write_text(json.dumps({"lms": lms, "files": records}))
            collector = "CanvasCollector" if lms == "canvas" else "MoodleCollector"
            course.nbgrader(
                "zip_collect", ASSIGNMENT, f"--collector=coursekit.lms.archives.{collector}",
                # nbgrader joins this to the course root before formatting it: an absolute path stays outside
                "--ZipCollectApp.collect_directory_structure="
                + os.path.join(scratch.replace("{", "{{").replace("}", "}}"), "{assignment_id}", "{collect_step}"),
                "--strict", *(["--force"] if force else []),
                quiet=not course.verbose,
            )
    for student, name in list(outcome.written.items()):
        if not course.submitted_notebook(student).is_file():  # zip_collect skipped it: say so, never claim it
            outcome.report.append(f"{shown(name[:160])}: not collected by nbgrader zip_collect (--verbose shows why)")
            del outcome.written[student]
    return outcome


class _PlannedCollector(FileNameCollectorPlugin):
    """A file the kit chose for a student (plan.json beside `extracted/`) → that student's notebook and time.

    The kit decided everything (coursekit/lms/archives.py); this matches the LMS's naming once more, so that a
    file the plan does not hold, or one whose name is not the LMS's, is never collected.
    """

    pattern: re.Pattern[str]

    def collect(self, submitted_file: str) -> dict[str, Any] | None:
        extracted = Path(self.parent._format_collect_path(self.parent.extracted_directory))
        plan_path = extracted.parent / PLAN
        try:
            files = json.loads(plan_path.read_text())["files"]
        except (OSError, ValueError, KeyError):
            self.log.warning("no %s from `coursekit collect` beside %s: nothing collected", PLAN, extracted)
            return None
        relative = Path(submitted_file).relative_to(extracted).as_posix()
        record = files.get(relative)
        if record is None or not self.pattern.match(relative) or id_problem(record["student_id"]):
            self.log.warning("not in the plan of `coursekit collect`: %s", relative)
            return None
        return {"student_id": record["student_id"], "file_id": NOTEBOOK, "timestamp": record["timestamp"]}


class CanvasCollector(_PlannedCollector):
    pattern = CANVAS_NAME


class MoodleCollector(_PlannedCollector):
    pattern = MOODLE_NAME
