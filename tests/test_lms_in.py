"""Roster and submissions in (coursekit/lms/roster.py, archives.py): parsers, LMS file naming, hostile archives,
and one end-to-end run through nbgrader's `db student import` and `zip_collect` in a scratch course."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from coursekit import ASSIGNMENT, cli
from coursekit.course.directory import Course, CourseError
from coursekit.engine.intake import MAX_BYTES, NOTEBOOK, id_problem
from coursekit.lms import archives, roster
from coursekit.lms.archives import CANVAS_NAME, MOODLE_NAME, Person

# A Canvas gradebook export as Canvas writes it: BOM, quoted "Last, First", the Points Possible row, a
# posting-policy row, the Student View's test student, and rows a hostile or careless SIS could produce.
CANVAS_CSV = (
    "\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,Custom Training Basics (4411),Current Score\n"
    "    Points Possible,,,,,19.00,(read only)\n"
    ",,,,,Manual Posting,\n"
    '"O\'Brien, Seán",1001,S-1001,sobrien,Lab A,,\n'
    '"van der Berg, Anna Maria",1002,S-1002,,Lab A,,\n'
    '"Nakamura, 花子",1003,,,Lab B,,\n'
    '"=HYPERLINK(""http://x""), Eve",1004,S-1004,eve,Lab B,,\n'
    '"Müller\u200b, Jürgen\nSecond line",1005,S-1005,jmueller,Lab B,,\n'
    '"Slash, Sam",1006,S-1006,../../etc,Lab B,,\n'
    '"Glob, Gil",1007,S-1007,gil*,Lab B,,\n'
    '"Copy, Sean",1008,S-1008,sobrien,Lab B,,\n'
    '"Bad, Id",10x9,S-1009,bad,Lab B,,\n'
    '"Student, Test",1010,,,Lab A,,\n'
)

MOODLE_CSV = (
    "First name,Last name,ID number,Email address,Groups\n"
    "Ana,Silva,m001,ana.silva@uni.example,G1\n"
    "José,O'Neil,,jose.oneil@uni.example,G1\n"
    "Li,Wei,,,G2\n"
    "Zed,Width,m\u200b002,zed@uni.example,G2\n"
    "Mallory,Email,,not-an-email,G2\n"
    "Mo,Dup,m001,dup@uni.example,G2\n"
)


# ---------------------------------------------------------------- rosters


def test_canvas_roster_ids_names_and_refusals() -> None:
    parsed = roster.parse(CANVAS_CSV)
    assert parsed.lms == "canvas"
    by_id = {s.id: s for s in parsed.students}
    # SIS Login ID, else SIS User ID, else the Canvas user id; lms_user_id is always the Canvas user id
    assert by_id["sobrien"] == roster.Student("sobrien", "Seán", "O'Brien", None, "1001")
    assert by_id["S-1002"].first_name == "Anna Maria" and by_id["S-1002"].last_name == "van der Berg"
    assert by_id["1003"].first_name == "花子" and by_id["1003"].lms_user_id == "1003"
    # a formula-like name is kept as text (exports neutralise it); an invisible character and a newline are not
    assert by_id["eve"].last_name == '=HYPERLINK("http://x")'
    assert by_id["jmueller"].last_name == "Müller" and by_id["jmueller"].first_name == "Jürgen Second line"
    assert set(by_id) == {"sobrien", "S-1002", "1003", "eve", "jmueller"}
    refused = "\n".join(parsed.refused)
    assert "'../../etc' refused" in refused and "'gil*' refused" in refused
    assert "'sobrien' is already on line" in refused
    assert "'10x9' is not a number" in refused
    assert len(parsed.refused) == 4
    assert len(parsed.skipped) == 3  # Points Possible, Manual Posting, Student, Test
    assert all(id_problem(s.id) is None for s in parsed.students)


def test_moodle_roster_ids_from_id_number_else_email() -> None:
    parsed = roster.parse(MOODLE_CSV)
    assert parsed.lms == "moodle"
    by_id = {s.id: s for s in parsed.students}
    assert by_id["m001"] == roster.Student("m001", "Ana", "Silva", "ana.silva@uni.example", None)
    assert by_id["jose.oneil"].last_name == "O'Neil"
    refused = "\n".join(parsed.refused)
    assert "line 4: no ID number and no email address" in refused  # Li Wei
    assert "line 5: student id 'm\\u200b002' refused: the id holds a control or invisible character" in refused
    assert "'m001' is already on line 2" in refused
    # a malformed email is dropped, and then there is no id to take from it
    assert "line 6" in refused and "not-an-email" not in by_id


@pytest.mark.parametrize("text, message", [
    ("Name,Mail\nA,b\n", "neither Canvas"),
    ("", "empty"),
])
def test_roster_that_is_no_export_is_refused(text: str, message: str) -> None:
    with pytest.raises(CourseError, match=message):
        roster.parse(text)


def test_roster_lms_given_must_match_header() -> None:
    with pytest.raises(CourseError, match="lacks Canvas's columns"):
        roster.parse(MOODLE_CSV, "canvas")
    assert roster.parse(MOODLE_CSV, "moodle").lms == "moodle"


def test_roster_file_not_utf8_or_too_big(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("First name,Last name\nJosé,Ñ\n".encode("latin-1"))
    with pytest.raises(CourseError, match="not UTF-8"):
        roster.read_text(latin)
    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * (roster.MAX_ROSTER_BYTES + 1))
    with pytest.raises(CourseError, match="not a roster"):
        roster.read_text(big)


# ---------------------------------------------------------------- LMS file naming


@pytest.mark.parametrize("name, user, late, filename", [
    ("obrienseán_1001_55501_custom_training_basics.ipynb", "1001", False, "custom_training_basics.ipynb"),
    ("vanderberganna_LATE_1002_55502_custom_training_basics-1.ipynb", "1002", True, "custom_training_basics-1.ipynb"),
    ("nakamura花子_1003_55503_2_lab_v2.ipynb", "1003", False, "2_lab_v2.ipynb"),
    ("_1004_55504_x.ipynb", "1004", False, "x.ipynb"),  # a name of punctuation only is empty
])
def test_canvas_naming(name: str, user: str, late: bool, filename: str) -> None:
    match = CANVAS_NAME.match(name)
    assert match and match["lms_user_id"] == user and bool(match["late"]) == late and match["filename"] == filename


@pytest.mark.parametrize("name, participant, plugin, filename", [
    ("Ana Silva_1234567_assignsubmission_file_/custom_training_basics.ipynb", "1234567", "file",
     "custom_training_basics.ipynb"),
    ("José ONeil_7654321_assignsubmission_file_custom_training_basics.ipynb", "7654321", "file",
     "custom_training_basics.ipynb"),
    ("Ana Silva_1234567_assignsubmission_file_/sub/dir/lab.ipynb", "1234567", "file", "lab.ipynb"),
    ("Ana Silva_1234567_assignsubmission_onlinetext_/onlinetext.html", "1234567", "onlinetext", "onlinetext.html"),
    ("Participant_99_assignsubmission_file_/a.ipynb", "99", "file", "a.ipynb"),
])
def test_moodle_naming(name: str, participant: str, plugin: str, filename: str) -> None:
    match = MOODLE_NAME.match(name)
    assert match and match["participant_id"] == participant and match["plugin"] == plugin
    assert match["filename"] == filename


@pytest.mark.parametrize("name", ["custom_training_basics.ipynb", "smith_abc_1_x.ipynb", "a/b_1_2_c.ipynb"])
def test_canvas_naming_refuses_other_names(name: str) -> None:
    assert CANVAS_NAME.match(name) is None


@pytest.mark.parametrize("name", ["../x_1_2_y.ipynb", "/abs_1_2_y.ipynb", "a/../../b.ipynb", "C:evil_1_2_x.ipynb",
                                  "a\\..\\b.ipynb", "a//b.ipynb", "x\u202e_1_2_y.ipynb", "./a.ipynb"])
def test_unsafe_entry_paths(name: str) -> None:
    assert archives.path_problem(name)


# ---------------------------------------------------------------- planning an archive


NB = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()
PEOPLE = [
    Person("sobrien", "Seán", "O'Brien", "", "1001"),
    Person("S-1002", "Anna Maria", "van der Berg", "", "1002"),
    Person("m001", "Ana", "Silva", "ana.silva@uni.example", ""),
    Person("jose.oneil", "José", "O'Neil", "jose.oneil@uni.example", ""),
    Person("twin1", "Sam", "Lee", "", ""),
    Person("twin2", "Sam", "Lee", "", ""),
]


def zip_of(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> zipfile.ZipFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    buffer.seek(0)
    return zipfile.ZipFile(buffer)


def link(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def test_canvas_plan_maps_users_and_reports_every_leftover() -> None:
    archive = zip_of([
        ("obriensean_1001_500_custom_training_basics.ipynb", NB),
        ("obriensean_1001_501_custom_training_basics-1.ipynb", NB),  # later, but not the release's name
        ("vanderberganna_LATE_1002_600_lab.ipynb", NB),
        ("vanderberganna_LATE_1002_601_lab2.ipynb", NB),  # later upload of two unnamed ones wins
        ("stranger_9999_700_custom_training_basics.ipynb", NB),
        ("../../evil_1001_800_custom_training_basics.ipynb", NB),
        link("obriensean_1001_900_link.ipynb", "/etc/passwd"),
        ("obriensean_1001_901_notes.pdf", b"%PDF"),
        ("anon_xyz12_902_custom_training_basics.ipynb", NB),
        ("random.ipynb", NB),
    ])
    chosen, report = archives.plan(archive, "canvas", PEOPLE, set(), False)
    assert {s: c.entry for s, c in chosen.items()} == {
        "sobrien": "obriensean_1001_500_custom_training_basics.ipynb",
        "S-1002": "vanderberganna_LATE_1002_601_lab2.ipynb",
    }
    text = "\n".join(report)
    assert "Canvas user 9999 is not in the roster" in text
    assert "../../evil" in text and "nothing is written outside submitted/" in text
    assert "a symbolic link" in text
    assert "not a notebook" in text
    assert "anonymous grading" in text
    assert "random.ipynb: skipped: the name does not follow Canvas's" in text
    assert "S-1002: Canvas marks this submission LATE" in text
    assert "custom_training_basics-1.ipynb left out" in text and "lab.ipynb left out" in text
    assert len(report) == 9


def test_moodle_plan_by_name_or_worksheet(tmp_path: Path) -> None:
    entries = [
        ("Ana Silva_111_assignsubmission_file_/custom_training_basics.ipynb", NB),
        ("José ONeil_222_assignsubmission_file_/mine.ipynb", NB),  # clean_filename drops the apostrophe
        ("Sam Lee_333_assignsubmission_file_/custom_training_basics.ipynb", NB),  # two Sam Lees in the roster
        ("Ana Silva_111_assignsubmission_onlinetext_/onlinetext.html", b"<p>hi</p>"),
    ]
    chosen, report = archives.plan(zip_of(entries), "moodle", PEOPLE, set(), False)
    assert sorted(chosen) == ["jose.oneil", "m001"]
    assert "several students of that name" in "\n".join(report)
    # the grading worksheet maps participant ids (whatever the name says) and brings the submission times
    worksheet = tmp_path / "worksheet.csv"
    worksheet.write_text(
        "Identifier,Full name,Email address,Status,Last modified (submission)\n"
        "Participant 333,Sam Lee,,Submitted,\n"
        "Participant 111,Ana Silva,ANA.SILVA@uni.example,Submitted,\"Tuesday, 15 December 2026, 11:59 PM\"\n"
        "Participant 222,José O'Neil,jose.oneil@uni.example,Submitted,-\n"
        "Participant 444,Sam Lee,,Submitted,\"32 Smarch 2026, 25:61\"\n"
        "Participant 555,Nobody,nobody@else.example,Submitted,\n", encoding="utf-8")
    notes: list[str] = []
    participants, times = archives.worksheet_times(worksheet, [*PEOPLE, Person("sam", "Sam", "Lee", "", "")],
                                                   "Europe/Berlin", notes)
    assert participants == {"111": "m001", "222": "jose.oneil"}
    assert times == {"m001": datetime(2026, 12, 15, 22, 59)}
    assert notes == []  # Sam Lee has neither ID number nor email in the worksheet: not matched, so no time either
    chosen, _ = archives.plan(zip_of(entries), "moodle", PEOPLE, set(), False, participants, times)
    assert chosen["m001"].timestamp == datetime(2026, 12, 15, 22, 59) and chosen["jose.oneil"].timestamp is None
    # a time that is no date is said, and that student has none; an unknown timezone is refused
    worksheet.write_text("Identifier,ID number,Last modified (submission)\nParticipant 444,sam,32 Smarch 2026\n")
    participants, times = archives.worksheet_times(worksheet, [Person("sam", "Sam", "Lee", "", "")], "UTC", notes)
    assert participants == {"444": "sam"} and times == {} and "'32 Smarch 2026' is not a date" in notes[0]
    with pytest.raises(CourseError, match="unknown timezone"):
        archives.worksheet_times(worksheet, PEOPLE, "Mars/Olympus")


def test_moodle_several_unnamed_notebooks_are_refused_not_guessed() -> None:
    archive = zip_of([
        ("Ana Silva_111_assignsubmission_file_/a.ipynb", NB),
        ("Ana Silva_111_assignsubmission_file_/b.ipynb", NB),
        ("Ana Silva_111_assignsubmission_file_/c.ipynb", NB),
    ])
    chosen, report = archives.plan(archive, "moodle", PEOPLE, set(), False)
    assert chosen == {}
    assert "several notebooks" in report[0] and "c.ipynb: skipped: another notebook" in report[1]


def test_existing_submission_is_kept_without_force() -> None:
    archive = zip_of([("obriensean_1001_500_custom_training_basics.ipynb", NB)])
    chosen, report = archives.plan(archive, "canvas", PEOPLE, {"sobrien"}, False)
    assert chosen == {} and "exists already" in report[0]
    chosen, report = archives.plan(archive, "canvas", PEOPLE, {"sobrien"}, True)
    assert list(chosen) == ["sobrien"] and report == []


def test_bounded_read_of_a_zip_bomb_and_a_lying_size() -> None:
    bomb = b"\0" * (MAX_BYTES + 10)
    archive = zip_of([("obriensean_1001_500_custom_training_basics.ipynb", bomb)])
    chosen, report = archives.plan(archive, "canvas", PEOPLE, set(), False)
    assert chosen == {} and "over the 20 MiB limit" in report[0]
    # a header that claims a small size is not believed: nothing past it is read, and the entry is refused
    info = archive.infolist()[0]
    info.file_size = 10
    assert "cannot be unpacked (BadZipFile: Bad CRC-32" in str(archives._read_bounded(archive, info))


# ---------------------------------------------------------------- end to end


def _zip_file(path: Path, entries: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return path


@pytest.mark.slow
def test_roster_and_collect_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A Canvas roster and archive, then a Moodle roster, archive and worksheet, into one scratch course:
    nbgrader's gradebook holds the students, submitted/ the notebooks and their times, nothing else is written."""
    from nbgrader.api import Gradebook

    from tests.conftest import copy_course

    course = copy_course(tmp_path / "course")
    solved = course.source_notebook.read_bytes()
    (tmp_path / "canvas.csv").write_text(CANVAS_CSV, encoding="utf-8")
    assert cli.main(["roster", str(tmp_path / "canvas.csv")], course=course) == 0
    canvas_zip = _zip_file(tmp_path / "canvas.zip", [
        ("obriensean_1001_500_custom_training_basics.ipynb", solved),
        ("nakamura花子_LATE_1003_501_Custom Training Basics (1).IPYNB", solved),
        ("stranger_9999_502_custom_training_basics.ipynb", solved),
        ("../../../escape_1001_503_custom_training_basics.ipynb", solved),
        ("vanderberganna_1002_504_custom_training_basics.ipynb", b"not json"),
    ])
    before = {p for p in course.root.rglob("*")}
    assert cli.main(["collect", str(canvas_zip), "--lms", "canvas"], course=course) == 0
    (tmp_path / "moodle.csv").write_text(MOODLE_CSV, encoding="utf-8")
    assert cli.main(["roster", str(tmp_path / "moodle.csv"), "--lms", "moodle"], course=course) == 0
    moodle_zip = _zip_file(tmp_path / "moodle.zip", [
        ("Ana Silva_4242_assignsubmission_file_/custom_training_basics.ipynb", solved),
    ])
    worksheet = tmp_path / "worksheet.csv"
    worksheet.write_text("Identifier,Full name,Email address,Last modified (submission)\n"
                         "Participant 4242,Ana Silva,ana.silva@uni.example,\"1 December 2026, 10:15 AM\"\n")
    assert cli.main(["collect", str(moodle_zip), "--lms", "moodle", "--worksheet", str(worksheet),
                     "--timezone", "Europe/Berlin"], course=course) == 0
    out = capsys.readouterr()
    assert "Canvas user 9999 is not in the roster" in out.err and "escape" in out.err
    assert "1003: Canvas marks this submission LATE" in out.err
    assert "S-1002: collected, but intake will grade it as blank (0 points)" in out.err

    with Gradebook(course.db_url, course_id="custom-training") as gradebook:
        students = {s.id: (s.first_name, s.last_name, s.email, s.lms_user_id) for s in gradebook.students}
    assert students["sobrien"] == ("Seán", "O'Brien", None, "1001")
    assert students["1003"] == ("花子", "Nakamura", None, "1003")
    assert students["m001"] == ("Ana", "Silva", "ana.silva@uni.example", None)
    assert "gil*" not in students and "../../etc" not in students
    assert len(students) == 5 + 2  # Canvas's five, Moodle's m001 and jose.oneil (the other rows are refused)

    for student in ("sobrien", "1003", "m001"):
        assert course.submitted_notebook(student).read_bytes() == solved
    assert course.submitted_notebook("S-1002").read_bytes() == b"not json"
    assert sorted(p.name for p in course.submitted.iterdir() if p.is_dir()) == ["1003", "S-1002", "m001", "sobrien"]
    assert not (course.submitted / "sobrien" / ASSIGNMENT / "timestamp.txt").exists()  # Canvas gives no time
    stamp = (course.submitted / "m001" / ASSIGNMENT / "timestamp.txt").read_text()
    assert stamp == "2026-12-01 09:15:00"  # 10:15 in Berlin, UTC as nbgrader writes it
    written = {p for p in course.root.rglob("*")} - before
    assert all(p.is_relative_to(course.submitted) or p.name.startswith("gradebook.db") for p in written), written
    assert not (tmp_path / "escape_1001_503_custom_training_basics.ipynb").exists()

    # collecting again keeps what is there, unless --force
    assert cli.main(["collect", str(canvas_zip), "--lms", "canvas"], course=course) == 0
    assert "exists already" in capsys.readouterr().err
    assert NOTEBOOK in {p.name for p in (course.submitted / "sobrien" / ASSIGNMENT).iterdir()}


@pytest.mark.parametrize("text", [
    "First name,Last name\nA,B\x00C\n",                       # NUL
    "First name,Last name,ID number\nA,B," + "x" * 200_000 + "\n",  # a field over csv's limit
    'First name,Last name,ID number\n"A,B,c\n',                 # an unclosed quote
])
def test_hostile_roster_text_never_crashes(text: str) -> None:
    try:
        parsed = roster.parse(text)
    except CourseError as exc:
        assert "not valid CSV" in str(exc) or "roster" in str(exc)
    else:
        assert all(id_problem(s.id) is None for s in parsed.students)


def test_roster_command_with_no_usable_row_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Student,ID,SIS User ID,SIS Login ID,Section\n\"Dot, Dot\",5,,..,A\n", encoding="utf-8")
    scratch = Course(tmp_path)  # no gradebook is written: nothing reaches nbgrader
    assert cli.main(["roster", str(bad)], course=scratch) == 1
    err = capsys.readouterr().err
    assert "line 2: student id '..' refused" in err and "no student imported" in err
    assert not (tmp_path / "gradebook.db").exists()


def test_archive_must_be_a_regular_zip(tmp_path: Path) -> None:
    (tmp_path / "not.zip").write_bytes(b"PK\x03\x04 but not a zip")
    with pytest.raises(CourseError, match="not a zip archive"):
        archives._open_archive(tmp_path / "not.zip")
    real = _zip_file(tmp_path / "real.zip", [("a.ipynb", NB)])
    (tmp_path / "link.zip").symlink_to(real)
    with pytest.raises(CourseError, match="cannot open the archive"):
        archives._open_archive(tmp_path / "link.zip")
    with archives._open_archive(real) as archive:
        assert archive.namelist() == ["a.ipynb"]


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_repeated_entry_name_keeps_the_first_and_says_so() -> None:
    archive = zip_of([("obriensean_1001_500_custom_training_basics.ipynb", NB),
                      ("obriensean_1001_500_custom_training_basics.ipynb", b"{}")])
    chosen, report = archives.plan(archive, "canvas", PEOPLE, set(), False)
    assert chosen["sobrien"].info is archive.infolist()[0]
    assert "the same name twice in the archive" in report[0]


def test_names_of_zips_without_the_utf8_flag_are_read_as_utf8() -> None:
    info = zipfile.ZipInfo("José ONeil_222_assignsubmission_file_/a.ipynb".encode().decode("cp437"))
    info.flag_bits = 0
    assert archives.decoded_name(info) == "José ONeil_222_assignsubmission_file_/a.ipynb"
    info.flag_bits = 0x800  # the zip said UTF-8: its name is taken as it is
    assert archives.decoded_name(info) != "José ONeil_222_assignsubmission_file_/a.ipynb"
