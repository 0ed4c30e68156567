"""Each student's feedback HTML packed in one zip for the LMS (`coursekit feedback --pack moodle|canvas`), under
feedback_packs/ (git-ignored).

Moodle ("Upload multiple feedback files in a zip", assignfeedback_file): each file sits in a folder named as
Moodle's own "Download all submissions" names it, `<Full name>_<participant id>_assignsubmission_file_`.
Moodle reads only the participant id (the number after the first `_`), which is the assignment's own
identifier for a student, not the user id: it is taken from the folder names of that download archive
(`--moodle-archive`), matched to nbgrader's students by full name (first last, or last first, as Moodle's
download writes it: `_` as a space, characters such as `/ : " '` dropped). A student whose name matches no
folder, or several, is left out and listed.

Canvas: its "Re-upload submissions" attaches a file as a submission comment only when the file is named
`..._<user id>_<attachment id>_...` after a file the student handed in, and then shows it under that file's name,
so an HTML feedback would reach the student as `custom_training_basics.ipynb`. Canvas has no bulk upload of
comment files besides that, so the Canvas pack is one file per student, named
`<name>_<Canvas user id>_<assignment>_feedback.html`, with manifest.csv (Canvas user id, student id, file) for
attaching them in SpeedGrader or through the API's submission-comment file upload. A student without a Canvas
user id (nbgrader's `lms_user_id`) is left out and listed.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import time
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from coursekit import ASSIGNMENT
from coursekit.course.directory import Course, CourseError
from coursekit.exports.csv_export import neutralised
from coursekit.exports.grade_rows import StudentGrade

PACKS = "feedback_packs"
FEEDBACK_NAME = f"{ASSIGNMENT}_feedback.html"
MAX_FEEDBACK_BYTES = 50 * 1024 * 1024


@dataclass
class Pack:
    path: Path
    packed: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)


def safe_component(text: str, limit: int = 80) -> str:
    """One path component for a zip: letters, digits, spaces, '-', '.', ','; never a separator, `_`, a control
    character or a leading dot."""
    text = unicodedata.normalize("NFC", text)
    kept = "".join(ch if ch.isalnum() or ch in " -.," else " " for ch in text)
    return re.sub(r"\s+", " ", kept).strip(". ")[:limit].strip(". ") or "student"


# What Moodle's clean_filename (PARAM_FILE) takes out of a name in its download's folder names.
_MOODLE_DROPS = re.compile(r"[\x00-\x1f\x7f&<>\"`|':\\/]")


def _name_key(text: str) -> str:
    """A full name as Moodle's download writes it (`_` as a space, file-name characters dropped), to compare."""
    text = _MOODLE_DROPS.sub("", unicodedata.normalize("NFC", text).replace("_", " "))
    return re.sub(r"\s+", " ", text).strip().casefold()


def moodle_participants(archive: Path) -> dict[str, str]:
    """{participant id: full name} from the folder names of a Moodle "Download all submissions" zip (or the folder
    it was unpacked into): `<Full name>_<participant id>_<plugin type>_<plugin name>[_...]`."""
    if archive.is_dir():
        names: Iterable[str] = os.listdir(archive)
    elif zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as handle:
            names = [entry.split("/", 1)[0] for entry in handle.namelist()]
    else:
        raise CourseError(f"{archive}: not a zip file or folder (Moodle's \"Download all submissions\" archive)")
    found: dict[str, str] = {}
    for name in names:
        parts = name.split("_", 4)
        if len(parts) >= 4 and parts[1].isdigit() and parts[2].startswith("assign"):
            found[parts[1]] = parts[0]
    if not found:
        raise CourseError(f"{archive}: no folder named <Full name>_<participant id>_assignsubmission_<plugin> in it: "
                          "is it Moodle's \"Download all submissions\" archive?")
    return found


def match_moodle(students: list[StudentGrade], participants: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """({student id: participant id}, {student id: why left out}), by full name, each match unique both ways."""
    by_name: dict[str, list[str]] = {}
    for participant, full_name in participants.items():
        by_name.setdefault(_name_key(full_name), []).append(participant)
    matched: dict[str, str] = {}
    left_out: dict[str, str] = {}
    for student in students:
        first, last = student.first_name.strip(), student.last_name.strip()
        if not (first or last):
            left_out[student.student_id] = "no name in nbgrader's student record (import the roster)"
            continue
        keys = {_name_key(f"{first} {last}"), _name_key(f"{last} {first}")}
        hits = sorted({p for key in keys for p in by_name.get(key, [])})
        if len(hits) != 1:
            left_out[student.student_id] = (f"{first} {last}".strip() + (
                " matches no folder of the Moodle archive" if not hits else " matches several Moodle participants"))
            continue
        matched[student.student_id] = hits[0]
    taken: dict[str, list[str]] = {}
    for student_id, participant in matched.items():
        taken.setdefault(participant, []).append(student_id)
    for ids in taken.values():
        if len(ids) > 1:  # two nbgrader students with one name: neither gets a guess
            for student_id in ids:
                matched.pop(student_id)
                left_out[student_id] = f"shares its name with {', '.join(i for i in ids if i != student_id)}"
    return matched, left_out


def read_feedback(course: Course, student_id: str) -> tuple[bytes, float] | None:
    """The student's feedback HTML and its time, read as a regular file (never through a link); None if missing."""
    folder = course.feedback / student_id / ASSIGNMENT
    path = folder / f"{ASSIGNMENT}.html"
    for part in (course.feedback / student_id, folder):
        if part.is_symlink() or not part.is_dir():
            return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FEEDBACK_BYTES:
            return None
        return handle.read(MAX_FEEDBACK_BYTES + 1), info.st_mtime


def _write_zip(target: Path, files: dict[str, tuple[bytes, float]]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        for name, (data, mtime) in sorted(files.items()):
            entry = zipfile.ZipInfo(name, date_time=time.localtime(max(mtime, 315532800))[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            handle.writestr(entry, data)
    partial.replace(target)


def pack_moodle(course: Course, students: list[StudentGrade], archive: Path) -> Pack:
    participants = moodle_participants(archive)
    matched, left_out = match_moodle(students, participants)
    pack = Pack(course.root / PACKS / f"{ASSIGNMENT}_moodle_feedback.zip", left_out=left_out)
    files: dict[str, tuple[bytes, float]] = {}
    for student_id, participant in sorted(matched.items()):
        feedback = read_feedback(course, student_id)
        if feedback is None:
            pack.left_out[student_id] = "no feedback file (run `coursekit feedback`)"
            continue
        folder = f"{safe_component(participants[participant])}_{participant}_assignsubmission_file_"
        files[f"{folder}/{FEEDBACK_NAME}"] = feedback
        pack.packed.append(student_id)
    _write_zip(pack.path, files)
    return pack


def pack_canvas(course: Course, students: list[StudentGrade]) -> Pack:
    pack = Pack(course.root / PACKS / f"{ASSIGNMENT}_canvas_feedback.zip")
    files: dict[str, tuple[bytes, float]] = {}
    manifest = io.StringIO()
    writer = csv.writer(manifest, lineterminator="\r\n")
    writer.writerow(["canvas_user_id", "student_id", "name", "file"])
    for student in students:
        user_id = student.lms_user_id.strip()
        if not user_id.isdigit() or not user_id.isascii():
            pack.left_out[student.student_id] = "no Canvas user id (lms_user_id) in nbgrader's student record"
            continue
        feedback = read_feedback(course, student.student_id)
        if feedback is None:
            pack.left_out[student.student_id] = "no feedback file (run `coursekit feedback`)"
            continue
        name = f"{student.last_name} {student.first_name}".strip() or student.student_id
        file_name = f"{safe_component(name)}_{user_id}_{FEEDBACK_NAME}"
        files[file_name] = feedback
        writer.writerow([neutralised(v) for v in (user_id, student.student_id, name, file_name)])
        pack.packed.append(student.student_id)
    files["manifest.csv"] = (manifest.getvalue().encode("utf-8"), time.time())
    _write_zip(pack.path, files)
    return pack
