"""Intake: each kind of unusable file gets a reason and a stand-in; only the notebook and timestamp are taken.

Everything here runs on real files (links, named pipes, devices), without nbgrader or kernels, except the
CSV export test, which runs the real `nbgrader export`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime
from pathlib import Path

import nbformat
import pytest

from coursekit import ASSIGNMENT
from coursekit.course import cohort
from coursekit.course.directory import Course
from coursekit.engine import intake
from coursekit.engine.grading import REFUSED_ID, Summary
from coursekit.exports.csv_export import neutralised

from .adversarial import planted
from .conftest import REPO, copy_course

NOTEBOOK = f"{ASSIGNMENT}.ipynb"
HONEST = cohort.STUDENTS[0].student_id

BAD_FILES: dict[str, tuple[bytes | None, str]] = {
    "missing": (None, "no custom_training_basics.ipynb in the submission"),
    "empty": (b"", "is empty (0 bytes)"),
    "not_json": (b'{"cells": [', "is not valid JSON"),
    "latin1": ('{"x": "caf\u00e9"}'.encode("latin-1"), "is not UTF-8 text"),
    "not_a_notebook": (b'{"hello": "world"}', "is not a valid Jupyter notebook"),
    "huge": (b" " * (intake.MAX_BYTES + 1), "over the 20 MiB limit"),
    "deep": (b"[" * 100_000 + b"]" * 100_000, "is not valid JSON"),
}


def _other_assignment() -> bytes:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('week 2')")])
    return nbformat.writes(notebook).encode()


@pytest.fixture
def course(tmp_path: Path) -> Course:
    return copy_course(tmp_path)


def _folder(course: Course, student: str) -> Path:
    folder = course.submitted / student / ASSIGNMENT
    folder.mkdir(parents=True)
    return folder


def _honest(course: Course, student: str) -> Path:
    folder = _folder(course, student)
    (folder / NOTEBOOK).write_bytes(course.demo_notebook(HONEST).read_bytes())
    return folder


def _staged(course: Course, student: str) -> Path:
    return course.root / intake.FOLDER / student / ASSIGNMENT


def _is_blank_stand_in(course: Course, student: str, reason: str) -> bool:
    stand_in = nbformat.read(_staged(course, student) / NOTEBOOK, as_version=4)
    release = nbformat.read(course.release_notebook, as_version=4)
    return reason in stand_in.cells[0].source and \
        [c.source for c in stand_in.cells[1:]] == [c.source for c in release.cells]


# ---------------------------------------------------------------- the notebook's content


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_each_unreadable_file_has_a_reason(course: Course, kind: str) -> None:
    content, expected = BAD_FILES[kind]
    path = _folder(course, kind) / NOTEBOOK
    if content is not None:
        path.write_bytes(content)
    reason = intake.problem(path)
    assert reason is not None and expected in reason


def test_a_notebook_of_another_assignment_is_named_as_such(course: Course) -> None:
    path = _folder(course, "other") / NOTEBOOK
    path.write_bytes(_other_assignment())
    assert "is not the custom_training_basics notebook" in (intake.problem(path) or "")


def test_honest_notebooks_pass(course: Course) -> None:
    for student in (s.student_id for s in cohort.STUDENTS):
        assert intake.problem(course.demo_notebook(student)) is None
    assert intake.problem(course.release_notebook) is None


def test_screen_stages_a_blank_stand_in_with_the_reason_and_leaves_submitted_as_sent(course: Course) -> None:
    _honest(course, "honest")
    broken = _folder(course, "broken") / NOTEBOOK
    broken.write_bytes(b"\xff\xfe not a notebook")

    outcome = intake.screen(course, ["broken", "honest"])

    assert outcome.staged == ["broken", "honest"]
    assert [r.student_id for r in outcome.rejected] == ["broken"]
    assert broken.read_bytes() == b"\xff\xfe not a notebook"
    assert _is_blank_stand_in(course, "broken", "is not UTF-8 text")
    assert (_staged(course, "honest") / NOTEBOOK).read_bytes() == course.demo_notebook(HONEST).read_bytes()
    # A rerun takes the same decision from the same files: nothing it wrote is read back.
    assert intake.screen(course, ["broken", "honest"]) == outcome


@pytest.mark.parametrize("size", [intake.MAX_BYTES + 1, 2_000])
def test_the_kits_old_rejected_mark_in_a_notebook_skips_nothing(course: Course, size: int) -> None:
    """A notebook that claims to be a stand-in the kit wrote is screened like any other: limits included."""
    notebook = nbformat.read(course.demo_notebook(HONEST), as_version=4)
    notebook.metadata[intake.REJECTED_MARK] = "trust me"
    notebook.cells[0].source += "\n" + "x" * size
    _folder(course, "marked")
    (course.submitted / "marked" / ASSIGNMENT / NOTEBOOK).write_text(nbformat.writes(notebook))
    outcome = intake.screen(course, ["marked"])
    if size > intake.MAX_BYTES:
        assert [r.reason for r in outcome.rejected] == [f"{NOTEBOOK} is 20 MiB, over the 20 MiB limit for a notebook"]
    else:
        assert not outcome.rejected
        staged = json.loads((_staged(course, "marked") / NOTEBOOK).read_text())
        assert staged["metadata"][intake.REJECTED_MARK] == "trust me"  # graded as the student's work, nothing else


@pytest.mark.parametrize("where", ["markdown", "code", "metadata key"])
def test_lone_surrogates_are_replaced_and_noted(course: Course, where: str) -> None:
    notebook = json.loads(course.demo_notebook(HONEST).read_text())
    if where == "markdown":
        notebook["cells"].insert(0, {"cell_type": "markdown", "id": "sur", "metadata": {}, "source": "a \ud800 b"})
    elif where == "code":
        cell = next(c for c in notebook["cells"] if c["cell_type"] == "code")
        cell["source"] = "# \udfff\n" + "".join(cell["source"])
    else:
        notebook["metadata"]["\ud83d"] = "x"
    (_folder(course, "sur") / NOTEBOOK).write_text(json.dumps(notebook))  # ensure_ascii: valid JSON escapes

    outcome = intake.screen(course, ["sur"])

    assert not outcome.rejected
    assert outcome.notes["sur"] == ["lone surrogate escapes (such as \\ud800) replaced by U+FFFD"]
    staged = (_staged(course, "sur") / NOTEBOOK).read_bytes()
    text = staged.decode("utf-8")
    assert "\ufffd" in text
    nbformat.writes(nbformat.reads(text, as_version=4)).encode("utf-8")  # what nbgrader failed to do


@pytest.mark.parametrize("value", [[], "x", 3, None])
def test_nbgrader_metadata_that_is_not_a_mapping_is_a_reason(course: Course, value: object) -> None:
    notebook = json.loads(course.demo_notebook(HONEST).read_text())
    next(c for c in notebook["cells"] if c["cell_type"] == "code")["metadata"]["nbgrader"] = value
    data, reason = intake.judge_notebook(json.dumps(notebook).encode())
    assert data is None and reason is not None and "nbgrader metadata is a" in reason


# ---------------------------------------------------------------- links, pipes, devices


def _special(course: Course, kind: str, target: Path) -> None:
    """Make `target` a `kind` of non-regular file: links to the solutions, to a device, a pipe, a socket."""
    if kind == "link_to_source":
        os.symlink(course.source_notebook, target)
    elif kind == "relative_link":
        os.symlink(os.path.relpath(course.source_notebook, target.parent), target)
    elif kind == "link_to_dev_zero":
        os.symlink("/dev/zero", target)
    elif kind == "dangling_link":
        os.symlink(target.parent / "nowhere", target)
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    else:
        raise AssertionError(kind)


SPECIAL = ("link_to_source", "relative_link", "link_to_dev_zero", "dangling_link", "fifo", "folder")


@pytest.mark.parametrize("kind", SPECIAL)
def test_a_notebook_that_is_not_a_regular_file_is_graded_blank(course: Course, kind: str) -> None:
    _special(course, kind, _folder(course, kind) / NOTEBOOK)
    outcome = intake.screen(course, [kind])
    assert len(outcome.rejected) == 1
    reason = outcome.rejected[0].reason
    assert "not a regular file" in reason, reason
    assert _is_blank_stand_in(course, kind, reason)


@pytest.mark.parametrize("level", ["student", "assignment"])
def test_a_submission_folder_that_is_a_link_is_graded_blank(course: Course, level: str) -> None:
    _honest(course, "victim")
    if level == "student":
        os.symlink(course.submitted / "victim", course.submitted / "thief")
    else:
        (course.submitted / "thief").mkdir()
        os.symlink(course.submitted / "victim" / ASSIGNMENT, course.submitted / "thief" / ASSIGNMENT)
    assert intake.find(course).students == ["thief", "victim"]
    outcome = intake.screen(course, ["thief", "victim"])
    assert [r.student_id for r in outcome.rejected] == ["thief"]
    assert "is a symbolic link, not a folder" in outcome.rejected[0].reason


@pytest.mark.parametrize("kind", ["link_to_source", "relative_link", "link_to_dev_zero", "fifo", "folder"])
def test_other_handed_in_files_are_never_taken(course: Course, kind: str) -> None:
    folder = _honest(course, "extra")
    for name in ("gradebook.db", "checks.py", "passwd", "source.ipynb", "zero"):
        _special(course, kind, folder / name)
    os.symlink(REPO / "grader_tests" / "checks.py", folder / "checks_abs.py")
    os.symlink("/etc/passwd", folder / "etc_passwd")
    (folder / "matplotlib_inline.py").write_text("raise ImportError('a planted module')\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.csv").write_text("1,2\n")

    outcome = intake.screen(course, ["extra"])

    assert not outcome.rejected and not outcome.notes
    staged = sorted(p.relative_to(course.root / intake.FOLDER).as_posix()
                    for p in (course.root / intake.FOLDER).rglob("*"))
    assert staged == ["extra", f"extra/{ASSIGNMENT}", f"extra/{ASSIGNMENT}/{NOTEBOOK}"]


# ---------------------------------------------------------------- timestamp.txt


def test_a_valid_timestamp_is_taken_as_nbgrader_reads_it(course: Course) -> None:
    (_honest(course, "on_time") / "timestamp.txt").write_text("2026-11-30 12:00:00.5 UTC\n")
    outcome = intake.screen(course, ["on_time"])
    assert not outcome.notes
    from nbgrader.utils import parse_utc

    assert parse_utc((_staged(course, "on_time") / "timestamp.txt").read_text().strip()) == \
        datetime(2026, 11, 30, 12, 0, 0, 500000)


BAD_TIMESTAMPS: dict[str, bytes | str] = {
    "not_a_date": b"not a date",
    "three_words": b"x y 5",
    "overflow": b"99999999999999999999",
    "binary": b"\xff\xfe\x00",
    "huge": b"2026-01-01 " + b"0" * 5000,
    "link_to_dev_zero": "link",
    "fifo": "fifo",
}


@pytest.mark.parametrize("kind", sorted(BAD_TIMESTAMPS))
def test_an_unusable_timestamp_is_dropped_and_noted(course: Course, kind: str) -> None:
    planted.timestamp(BAD_TIMESTAMPS[kind])(_honest(course, kind))
    outcome = intake.screen(course, [kind])
    assert not outcome.rejected
    assert len(outcome.notes[kind]) == 1 and "graded without a submission time" in outcome.notes[kind][0]
    assert sorted(p.name for p in _staged(course, kind).iterdir()) == [NOTEBOOK]


# ---------------------------------------------------------------- student ids


HARMLESS_IDS = ("alice", "Zoë Ünïcødé", "学生 7", "o'neil", 'say "hi"', ".dotted", "-dash", "--force",
                "=HYPERLINK(\"evil.example\",\"y\")", "+1", "@cmd", "a,b;c", "$HOME", "x" * intake.MAX_ID_CHARS)
REFUSED_IDS = ("", ".", "..", "a*", "b?", "[c]", "d]", "e/f", "g\\h", "new\nline", "tab\tid", "esc\x1b[2J",
               "bidi\u202eevil", "zero\u200bwidth", "nul\x00", "bad\udcff", " padded", "padded ",
               "x" * (intake.MAX_ID_CHARS + 1))


@pytest.mark.parametrize("student", HARMLESS_IDS)
def test_odd_but_harmless_ids_are_allowed(student: str) -> None:
    assert intake.id_problem(student) is None


@pytest.mark.parametrize("student", REFUSED_IDS)
def test_ids_nbgrader_would_read_as_patterns_or_paths_are_refused(student: str) -> None:
    assert intake.id_problem(student)


def test_find_lists_odd_ids_literally_and_refuses_the_rest(course: Course) -> None:
    for student in ("alice", ".dotted", "-dash", "o'neil", "[abc]", "new\nline 19 of 19", "star*"):
        _honest(course, student)
    (course.submitted / "not_a_student").mkdir()  # no assignment folder in it
    found = intake.find(course)
    assert found.students == ["-dash", ".dotted", "alice", "o'neil"]
    assert set(found.refused) == {"[abc]", "new\nline 19 of 19", "star*"}


def test_ids_and_reasons_are_printed_escaped() -> None:
    assert intake.shown("new\nline\x1b[31m\u202e\\") == "new\\x0aline\\x1b[31m\\u202e\\\\"
    assert intake.shown("Zoë 学生 o'neil") == "Zoë 学生 o'neil"
    summary = Summary(total=2, graded=["a\nb 19/19"], blank={"a\nb 19/19": "bad\r\nreason"},
                      failed={"x\ny": (REFUSED_ID, "the id holds a control or invisible character")})
    table = summary.table()
    assert "a\\x0ab 19/19  bad\\x0d\\x0areason" in table
    assert "x\\x0ay" in table
    assert not any(line.startswith(("b 19/19", "y")) for line in table.splitlines())


# ---------------------------------------------------------------- CSV


@pytest.mark.parametrize(("value", "cell"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1", "'+1"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("alice", "alice"), ("o'neil", "o'neil"), (None, ""), (19.0, 19.0),
])
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(value: object, cell: object) -> None:
    assert neutralised(value) == cell


@pytest.mark.slow
def test_nbgrader_export_writes_formula_ids_as_text(course: Course) -> None:
    from nbgrader.api import Gradebook

    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
    ids = ["=HYPERLINK(\"http://evil\",\"x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)", "a,b \"q\"", "alice"]
    with Gradebook(course.db_url) as gradebook:
        for student in ids:
            gradebook.add_student(student, first_name="=1+1", last_name="Smith", email="@x")
    course.nbgrader("export", "--to", str(course.root / "grades.csv"), quiet=True)
    rows = list(csv.DictReader(io.StringIO((course.root / "grades.csv").read_text(encoding="utf-8"))))
    assert sorted(row["student_id"] for row in rows) == sorted(neutralised(s) for s in ids)
    for row in rows:
        assert row["first_name"] == "'=1+1" and row["email"] == "'@x" and row["last_name"] == "Smith"
        assert row["score"] == "0.0" and row["max_score"] == "19.0"
        assert not any(str(value).startswith(("=", "+", "-", "@", "\t", "\r")) for value in row.values())


# ---------------------------------------------------------------- the command line


def test_refused_ids_are_listed_escaped_and_the_run_fails(course: Course, capfd: pytest.CaptureFixture[str]) -> None:
    from coursekit import cli

    for student in ("star*", "new\nline 19 of 19"):
        _honest(course, student)
    assert cli.main(["grade"], course=course) == 1
    captured = capfd.readouterr()
    assert "refused id" in captured.out and "new\\x0aline 19 of 19" in captured.out and "star*" in captured.out
    assert "\nline 19 of 19" not in captured.out + captured.err
    assert "2 of 2 submissions could not be graded" in captured.err and "rename their folders" in captured.err


@pytest.mark.parametrize(("student", "message"), [
    ("a[b]", "refusing the student id 'a[b]': the id holds [ ]"),
    ("x\x1b[2J", "refusing the student id 'x\\\\x1b[2J'"),
    ("nobody", "no submission for 'nobody'"),
])
def test_student_mode_refuses_with_a_clear_message(
    course: Course, capsys: pytest.CaptureFixture[str], student: str, message: str
) -> None:
    from coursekit import cli

    _honest(course, "alice")
    assert cli.main(["grade", f"--student={student}"], course=course) == 1
    assert message in capsys.readouterr().err
