"""Intake: what grading takes from `submitted/`, and nothing else.

Whatever a student hands in is untrusted: the folder may hold symbolic links (a zip or tar unpacked on the
grading machine keeps them), devices, named pipes, huge files, files named like the kit's own modules, or a
notebook that claims to be something the kit wrote. Intake reads, for each student, exactly these things,
each once and as a regular file (every path component opened with O_NOFOLLOW, checked with fstat on the
open descriptor, read up to a size limit on that descriptor):

- the assignment's notebook (20 MiB at most), and
- `timestamp.txt` (1 KiB at most), when there is one, parsed here, and
- `submission_secret.txt` (1 KiB at most, hex digits only), when there is one: nbgrader's `submit` writes it and
  `collect` copies it; nbgrader's `release_feedback` names the student's feedback in the exchange after it, so it
  follows the graded notebook into `autograded/` and `feedback/`.

It writes what it took into `intake/<student>/<assignment>/`, a folder only the grader writes and rebuilds
on every run; nbgrader grades from there (`--CourseDirectory.submitted_directory=intake`), never from
`submitted/`. So no other handed-in file reaches `autograded/`, `feedback/` or a kernel, in any mode, and
`submitted/` stays exactly as the student sent it.

A notebook that cannot be graded (missing, not a regular file, empty, too big, not UTF-8, not JSON, not a
notebook, another assignment's) is replaced there by the blank release with a first cell that says why: the
student gets 0 points, a row in the gradebook and the reason in their feedback. docs/security.md
("Intake") lists every decision.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat

from coursekit import ASSIGNMENT
from coursekit.course.directory import Course

# A solved notebook with its four figures is about 0.2 MB; anything this large is not an honest submission.
MAX_BYTES = 20 * 1024 * 1024
MAX_TIMESTAMP_BYTES = 1024
MAX_ID_CHARS = 128
SOLUTION_IDS = ("model", "loss", "train")
# Written into stand-ins by earlier versions of the kit. It means nothing now: what intake staged is known from
# the grader's own folder, never from a notebook a student could have written.
REJECTED_MARK = "coursekit-rejected"
FOLDER = "intake"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
TIMESTAMP = "timestamp.txt"
# nbgrader submit's random key (secrets.token_hex(64)); only ever hashed into a feedback file's name.
SECRET = "submission_secret.txt"
_SECRET_RE = re.compile(rb"[0-9a-fA-F]{16,256}")
# nbgrader reads the staged copies, not submitted/: pass this to every `nbgrader autograde` the kit runs.
NBGRADER_OPTION = f"--CourseDirectory.submitted_directory={FOLDER}"

# Characters that are glob patterns to nbgrader (it globs `submitted/<student>/<assignment>`), path separators,
# and what the terminal or a spreadsheet would read as structure. Anything else, unicode, spaces, quotes, a
# leading dot or dash, is a harmless id.
_GLOB = frozenset("*?[]")
_SEPARATORS = frozenset("/\\")


@dataclass(frozen=True)
class Rejection:
    """A student whose notebook is graded as the blank release (0 points), and why."""

    student_id: str
    reason: str


@dataclass
class Intake:
    """The outcome of screening: who was staged, who is graded blank and why, what else was noticed."""

    staged: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)  # student: things dropped or repaired, graded anyway


# ---------------------------------------------------------------- showing untrusted text


def shown(text: str) -> str:
    """`text` safe to print on a terminal: control, format and separator characters escaped, backslash doubled.

    An id or a reason comes from a student (a folder name, their notebook's content): a newline would print a
    fake row, an escape sequence would rewrite the instructor's screen.
    """
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp", "Co", "Cn"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)


# ---------------------------------------------------------------- student ids


def id_problem(student_id: str) -> str | None:
    """Why `student_id` (a folder name in submitted/) is refused, or None when it is allowed.

    nbgrader treats the id as part of a glob and of a path, and writes it in the gradebook: so no glob
    characters, no path separators, not `.` or `..`, no control characters, valid UTF-8, not over-long.
    """
    if not student_id:
        return "the id is empty"
    if student_id in (".", ".."):
        return f"the id {student_id!r} names a folder, not a student"
    if len(student_id) > MAX_ID_CHARS:
        return f"the id is {len(student_id)} characters long, over the limit of {MAX_ID_CHARS}"
    if any("\ud800" <= char <= "\udfff" for char in student_id):
        return "the id is not valid UTF-8"
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Co", "Cn") for char in student_id):
        return "the id holds a control or invisible character"
    bad = sorted(set(student_id) & (_GLOB | _SEPARATORS))
    if bad:
        return f"the id holds {' '.join(bad)}, which nbgrader reads as a pattern or a path"
    if student_id != student_id.strip():
        return "the id starts or ends with white space"
    return None


@dataclass
class Found:
    """The entries of submitted/: students to grade, and names refused with why (print them with `shown`)."""

    students: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def find(course: Course) -> Found:
    """Every submission in submitted/, listed without globbing and without following links.

    A real folder with an `<assignment>` entry is a submission; so is a link or special file named like a
    student (graded blank, with the reason). Regular files (submitted/README.md) and folders without the
    assignment are not submissions.
    """
    found = Found()
    try:
        entries = list(os.scandir(course.submitted))
    except FileNotFoundError:
        return found
    for entry in sorted(entries, key=lambda e: e.name):
        if entry.is_file(follow_symlinks=False):
            continue
        if entry.is_dir(follow_symlinks=False) and not os.path.lexists(os.path.join(entry.path, ASSIGNMENT)):
            continue
        problem = id_problem(entry.name)
        if problem:
            found.refused[entry.name] = problem
        else:
            found.students.append(entry.name)
    return found


# ---------------------------------------------------------------- reading a submission, once


class _Unusable(Exception):
    """A path that is not a regular file (or folder) of the submission; the message says what it is."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def _open_folder(name: str, parent: int | None, shown_as: str) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        return os.open(name, flags, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
            raise _Unusable(f"{shown_as} is {_kind(mode)}, not a folder") from None
        raise


def _read_regular(folder: int, name: str, limit: int) -> bytes | None:
    """The file `name` in the open `folder`, if it is a regular file of at most `limit` bytes; None if absent.

    Never follows a link, never opens a device or a pipe for reading (O_NONBLOCK: opening a FIFO does not wait
    for a writer), and the size is checked on the open descriptor, then bounded while reading.
    """
    try:
        mode = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(mode):
        raise _Unusable(f"{name} is {_kind(mode)}, not a regular file")
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=folder)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a link since the stat above
            raise _Unusable(f"{name} is a symbolic link, not a regular file") from None
        raise
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise _Unusable(f"{name} is {_kind(opened.st_mode)}, not a regular file")
        if opened.st_size > limit:
            raise _Unusable(_too_big(name, opened.st_size, limit))
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # it grew after fstat
            raise _Unusable(_too_big(name, total, limit))
        return b"".join(chunks)
    finally:
        os.close(fd)


def _too_big(name: str, size: int, limit: int) -> str:
    if limit >= 2**20:
        return f"{name} is {size / 2**20:.0f} MiB, over the {limit // 2**20} MiB limit for a notebook"
    return f"{name} is over the limit of {limit} bytes"


@dataclass
class Taken:
    """What intake took from one submission: the notebook's bytes or why there are none, and its timestamp."""

    notebook: bytes | None
    reason: str | None = None
    timestamp: datetime | None = None
    notes: list[str] = field(default_factory=list)
    secret: bytes | None = None


def take(course: Course, student: str) -> Taken:
    """Read `student`'s notebook and timestamp.txt from submitted/, once each, as regular files."""
    try:
        top = os.open(course.submitted, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return Taken(None, f"no {NOTEBOOK} in the submission")
    folders: list[int] = [top]
    try:
        try:
            folders.append(_open_folder(student, top, "the submission folder"))
            folders.append(_open_folder(ASSIGNMENT, folders[-1], f"the {ASSIGNMENT} folder"))
        except FileNotFoundError:
            return Taken(None, f"no {NOTEBOOK} in the submission")
        except _Unusable as exc:
            return Taken(None, str(exc))
        except OSError as exc:  # unreadable (permissions ...): the student still gets a row, with the reason
            return Taken(None, f"the submission folder cannot be read ({exc.strerror})")
        folder = folders[-1]
        try:
            data = _read_regular(folder, NOTEBOOK, MAX_BYTES)
        except _Unusable as exc:
            data, reason = None, str(exc)
        except OSError as exc:
            data, reason = None, f"{NOTEBOOK} cannot be read ({exc.strerror})"
        else:
            reason = None if data is not None else f"no {NOTEBOOK} in the submission"
        taken = Taken(data, reason)
        _take_timestamp(folder, taken)
        _take_secret(folder, taken)
        return taken
    finally:
        for fd in reversed(folders):
            os.close(fd)


def _read_extra(folder: int, name: str, taken: Taken, dropped: str) -> bytes | None:
    """A small file beside the notebook (timestamp, secret), or None; why it cannot be used goes in the notes,
    followed by `dropped` (what that costs the student)."""
    try:
        return _read_regular(folder, name, MAX_TIMESTAMP_BYTES)
    except _Unusable as exc:
        taken.notes.append(f"{exc}: {dropped}")
    except OSError as exc:
        taken.notes.append(f"{name} cannot be read ({exc.strerror}): {dropped}")
    return None


def _take_timestamp(folder: int, taken: Taken) -> None:
    """A timestamp that cannot be used is dropped: the submission is graded as one without a time (never late)."""
    raw = _read_extra(folder, TIMESTAMP, taken, "ignored, graded without a submission time")
    if raw is None:
        return
    parsed = parse_timestamp(raw)
    if parsed is None:
        taken.notes.append(f"{TIMESTAMP} is not a date ({shown(raw[:60].decode('utf-8', 'replace').strip())!r}): "
                           "ignored, graded without a submission time")
    taken.timestamp = parsed


def submitted_time(course: Course, student: str) -> datetime | None:
    """The time in `student`'s submitted timestamp.txt, read as `take` reads it; None without a usable one.

    A later time than the graded submission's means a resubmission (nbgrader's `collect --update` writes it):
    coursekit/engine/completion.py grades it again, as nbgrader's own autograde does.
    """
    folders: list[int] = []
    try:
        folders.append(os.open(course.submitted, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        folders.append(_open_folder(student, folders[-1], "the submission folder"))
        folders.append(_open_folder(ASSIGNMENT, folders[-1], f"the {ASSIGNMENT} folder"))
        taken = Taken(None)
        _take_timestamp(folders[-1], taken)
        return taken.timestamp
    except (OSError, _Unusable):
        return None
    finally:
        for fd in reversed(folders):
            os.close(fd)


def _take_secret(folder: int, taken: Taken) -> None:
    """nbgrader's submission secret, if it is one: anything else is dropped (no feedback through the exchange)."""
    dropped = "ignored, their feedback cannot be released through nbgrader's exchange"
    raw = _read_extra(folder, SECRET, taken, dropped)
    if raw is None:
        return
    if _SECRET_RE.fullmatch(raw) is None:
        taken.notes.append(f"{SECRET} is not nbgrader's (hex digits): {dropped}")
        return
    taken.secret = raw


def parse_timestamp(raw: bytes) -> datetime | None:
    """The time in a timestamp.txt as nbgrader reads it (UTC, naive), or None when it is not one.

    nbgrader's own parser raises ValueError, AttributeError, OverflowError and more on odd text; any of them
    used to fail the whole submission, on every run.
    """
    from nbgrader.utils import parse_utc

    try:
        text = raw.decode("utf-8").strip()
        if not text:
            return None
        parsed = parse_utc(text)
    except Exception:  # dateutil raises many unrelated types on hostile text
        return None
    return parsed if isinstance(parsed, datetime) else None


# ---------------------------------------------------------------- judging the notebook


def _lone_surrogates(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if any("\ud800" <= char <= "\udfff" for char in value):
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _lone_surrogates(key)
            yield from _lone_surrogates(item)
    elif isinstance(value, list):
        for item in value:
            yield from _lone_surrogates(item)


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in value)
    if isinstance(value, dict):
        return {_replace_surrogates(key): _replace_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_surrogates(item) for item in value]
    return value


def judge_notebook(raw: bytes, notes: list[str] | None = None) -> tuple[bytes | None, str | None]:
    """(the bytes to grade, None), or (None, why `raw` cannot be graded as this assignment's notebook).

    A lone surrogate escape (`\\ud800`, valid JSON but not encodable text) is replaced by U+FFFD, and noted:
    nbgrader could not write such a notebook back, and failed the student on every run.
    """
    if not raw:
        return None, f"{NOTEBOOK} is empty (0 bytes)"
    if len(raw) > MAX_BYTES:
        return None, _too_big(NOTEBOOK, len(raw), MAX_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"{NOTEBOOK} is not UTF-8 text (bad byte at offset {exc.start}): save it again from Jupyter"
    try:
        content = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return None, f"{NOTEBOOK} is not valid JSON ({_first_line(exc)}): it was damaged, or is not a notebook"
    if any(True for _ in _lone_surrogates(content)):
        content = _replace_surrogates(content)
        text = json.dumps(content, ensure_ascii=False, indent=1) + "\n"
        raw = text.encode("utf-8")
        if notes is not None:
            notes.append("lone surrogate escapes (such as \\ud800) replaced by U+FFFD")
    try:
        notebook = nbformat.reads(text, as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # nbformat raises several unrelated types for malformed notebooks
        return None, f"{NOTEBOOK} is not a valid Jupyter notebook ({_first_line(exc)})"
    for index, cell in enumerate(notebook.cells, 1):
        # nbgrader reads each cell's metadata.nbgrader as a mapping and raised on anything else, on every run.
        if not isinstance(cell.get("metadata", {}).get("nbgrader", {}), dict):
            kind = type(cell.metadata.nbgrader).__name__
            return None, f"{NOTEBOOK} is not a valid nbgrader notebook (cell {index}: nbgrader metadata is a {kind})"
    ids = {cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") for cell in notebook.cells}
    if not ids & set(SOLUTION_IDS):
        answers = ", ".join(SOLUTION_IDS)
        return None, f"{NOTEBOOK} is not the {ASSIGNMENT} notebook: none of its answer cells ({answers}) is in it"
    return raw, None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return shown(text.splitlines()[0][:200]) if text else type(exc).__name__


def problem(path: Path) -> str | None:
    """Why the file at `path` cannot be graded as this assignment's notebook, or None when it can (no links)."""
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        raw = _read_regular(folder, path.name, MAX_BYTES)
    except _Unusable as exc:
        return str(exc)
    finally:
        os.close(folder)
    if raw is None:
        return f"no {path.name} in the submission"
    return judge_notebook(raw)[1]


# ---------------------------------------------------------------- staging


def stand_in(release: nbformat.NotebookNode, reason: str) -> nbformat.NotebookNode:
    """The blank release, opened by a cell that tells the student why their file was not graded."""
    notebook = nbformat.from_dict(json.loads(json.dumps(release)))
    # The reason may quote the student's file: shown as code, so it cannot become HTML in the feedback.
    quoted = shown(reason).replace("`", "'")
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell(
        f"**Your submission could not be graded:** `{quoted}`\n\n"
        "It was graded as the blank assignment (0 points). Your file is kept as you sent it; "
        "ask your instructor to regrade once you have submitted a working notebook."
    ))
    return notebook


def staged_notebook(course: Course, student: str) -> Path:
    return course.root / FOLDER / student / ASSIGNMENT / NOTEBOOK


def screen(course: Course, students: list[str]) -> Intake:
    """Stage each of `students`' submissions in intake/ (the folder is rebuilt): the notebook, or a stand-in.

    `students` must have passed `id_problem` (they come from `find`, or were checked against it).
    """
    release = nbformat.read(course.release_notebook, as_version=4)
    root = course.root / FOLDER
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    outcome = Intake()
    for student in students:
        if id_problem(student):
            raise ValueError(f"student id {shown(student)!r} was not checked: {id_problem(student)}")
        taken = take(course, student)
        notes = list(taken.notes)
        try:
            data, reason = (None, taken.reason) if taken.notebook is None else judge_notebook(taken.notebook, notes)
        except Exception as exc:  # a case judge_notebook does not foresee must cost this student only
            data, reason = None, f"{NOTEBOOK} could not be read ({type(exc).__name__}: {_first_line(exc)})"
        target = staged_notebook(course, student)
        target.parent.mkdir(parents=True)
        if data is None:
            reason = reason or "the notebook cannot be graded"
            data = nbformat.writes(stand_in(release, reason)).encode()
            outcome.rejected.append(Rejection(student, reason))
        target.write_bytes(data)
        if taken.timestamp is not None:
            (target.parent / TIMESTAMP).write_text(taken.timestamp.isoformat(sep=" ") + "\n")
        if taken.secret is not None:
            (target.parent / SECRET).write_bytes(taken.secret)
        if notes:
            outcome.notes[student] = notes
        outcome.staged.append(student)
    return outcome
