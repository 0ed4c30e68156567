"""Grades and feedback out to the LMS: the Canvas and Moodle import CSVs, the per-part CSV, the feedback packs.

Each file is checked against the rules of the importer that reads it (docs/lms.md, "Grades and feedback out"):
Canvas's GradebookImporter (header, assignment column, Points Possible row, how it reads numbers) and Moodle's
gradeimport_csv and assignfeedback_file (user key, numbers, folder names).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from coursekit import ASSIGNMENT, cli
from coursekit.course.directory import Course, CourseError
from coursekit.course.gradebook import open_gradebook
from coursekit.exports import parts_csv, scores
from coursekit.exports.csv_export import SafeCsvExportPlugin
from coursekit.exports.grade_rows import Grades, StudentGrade, load, plain_decimal
from coursekit.lms import canvas_grades, feedback_pack, moodle_grades
from coursekit.lms.out_settings import LmsExport

HOSTILE_NAMES = ['=HYPERLINK("http://evil.example","x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
                 'Doe, "Jane"', "line\nbreak", "\tTab"]


def _student(student_id: str, raw: float, penalty: float = 0.0, **record: str) -> StudentGrade:
    groups = {"model": 4.0, "loss": 3.0, "train": 3.0, "convergence": 3.0, "plot": 3.0}
    scale = raw / sum(groups.values())
    return StudentGrade(student_id, groups={g: p * scale for g, p in groups.items()}, raw=raw, penalty=penalty,
                        submitted=True, **record)


def _grades() -> Grades:
    students = [
        _student("ann", 16.0, first_name="Ann", last_name="Lee", email="ann@example.edu", lms_user_id="101"),
        _student("bob", 12.5, penalty=2.5, first_name="Bob", last_name="Smith, Jr.", email="bob@example.edu",
                 lms_user_id="102"),
        _student("=cmd", 1 / 3, first_name=HOSTILE_NAMES[0], last_name=HOSTILE_NAMES[4], email="-x@example.edu",
                 lms_user_id="not-a-number"),
        _student("late", 4.0, penalty=9.0, first_name=HOSTILE_NAMES[5], last_name=HOSTILE_NAMES[1]),
        StudentGrade("absent", first_name="Al", last_name="Absent", email="al@example.edu"),
    ]
    return Grades(students, 16.0, {"model": 4.0, "loss": 3.0, "train": 3.0, "convergence": 3.0, "plot": 3.0})


def _parse(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _is_neutral(cell: str) -> bool:
    """What a spreadsheet shows as text, never runs: no leading =, +, -, @, tab or carriage return."""
    return not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


PLAIN_DECIMAL = re.compile(r"\A[0-9]+(\.[0-9]{1,2})?\Z")


def canvas_reads_number(field: str) -> str:
    """Canvas's decimal_comma_to_period converter: every '.' or ',' but the last is dropped, the last is '.'."""
    if not re.fullmatch(r"-?[0-9.,]+%?", field):
        return field
    *head, last = re.split(r"[,.]", field)
    return f"{''.join(head)}.{last}" if head else last


def check_canvas_rules(rows: list[list[str]]) -> dict[str, str]:
    """The checks Canvas's GradebookImporter makes, as documented in docs/lms.md; {student: grade} if it accepts."""
    header = rows[0]
    assert len(header) > 3 and "Student" in header[0] and "ID" in header[1], "Canvas: invalid header row"
    assert re.search(r"SIS\s+User\s+ID", header[2]) and re.search(r"SIS\s+Login\s+ID", header[3])
    assert "Section" in header[4], "Canvas: the last student column must be Section"
    assignments = header[5:]
    assert len(assignments) == 1
    assert not any(word in assignments[0] for word in canvas_grades.CANVAS_COMPUTED_COLUMNS)
    assert re.fullmatch(r"(.*)\s\((\d+)\)", assignments[0]), "Canvas: no assignment id in the column"
    assert "Points Possible" in rows[1][0]
    grades = {}
    for row in rows[1:]:
        assert len(row) == len(header), f"row shifted: {row}"
        assert all(_is_neutral(cell) for cell in row), row
        assert PLAIN_DECIMAL.match(row[5]), row[5]
        assert canvas_reads_number(row[5]) == row[5], "Canvas would read this number as another"
        assert row[1] == "" or row[1].isdigit(), "Canvas: ID is the numeric user id"
        if "Points Possible" not in row[0]:
            grades[row[1] or row[0]] = row[5]
    return grades


@pytest.mark.parametrize(("value", "text"), [
    (12, "12"), (12.0, "12"), (9.5, "9.5"), (1 / 3, "0.33"), (2 / 3, "0.67"), (0.005, "0.01"), (0.125, "0.13"),
    (1234.5, "1234.5"), (1e-7, "0"), (-0.0, "0"), (1e20, "100000000000000000000"), (19.999, "20"),
])
def test_numbers_are_plain_decimals(value: float, text: str) -> None:
    assert plain_decimal(value) == text


def test_canvas_csv_follows_the_importer_rules_with_points_possible_quoting_and_neutralised_cells(
    tmp_path: Path,
) -> None:
    settings = LmsExport(title="Lab 3: Custom Training, Basics", canvas_assignment_id="4711",
                         canvas_section="=Section A", canvas_sis_user_id="student_id", canvas_sis_login_id="email")
    path = tmp_path / "canvas.csv"
    canvas_grades.write(_grades(), settings, path)
    rows = _parse(path)
    assert rows[0] == [*canvas_grades.STUDENT_COLUMNS, "Lab 3: Custom Training, Basics (4711)"]
    assert canvas_grades.STUDENT_COLUMNS == ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
    assert rows[1] == ["Points Possible", "", "", "", "", "16"]
    by_id = check_canvas_rules(rows)
    assert by_id["101"] == "16" and by_id["102"] == "10"  # 12.5 - 2.5 late
    assert rows[2] == ["Lee, Ann", "101", "ann", "ann@example.edu", "'=Section A", "16"]
    assert rows[3][0] == "Smith, Jr., Bob"
    hostile = rows[4]
    assert hostile[0] == f"{HOSTILE_NAMES[4]}, {HOSTILE_NAMES[0]}"  # a formula inside a cell runs in no spreadsheet
    assert hostile[1] == "", "a Canvas ID that is not a number is left blank"
    assert hostile[2:4] == ["'=cmd", "'-x@example.edu"]
    assert hostile[5] == "0.33"
    late = rows[5]
    assert late[0] == f"'{HOSTILE_NAMES[1]}, {HOSTILE_NAMES[5]}" and late[5] == "0", "the penalty never goes below 0"
    assert rows[6] == ["Absent, Al", "", "absent", "al@example.edu", "'=Section A", "0"]
    raw = path.read_bytes().decode("utf-8")
    assert raw.startswith("Student,ID,SIS User ID,SIS Login ID,Section,\"Lab 3: Custom Training, Basics (4711)\"\r\n")
    assert canvas_grades.unmatched_by_id(_grades()) == ["=cmd", "late", "absent"]


@pytest.mark.parametrize(("settings", "message"), [
    (LmsExport(title="Lab"), "no Canvas assignment id"),
    (LmsExport(title="Final Grade lab", canvas_assignment_id="1"), "drops such columns"),
    (LmsExport(title="Lab\nTwo", canvas_assignment_id="1"), "one line"),
    (LmsExport(title=" ", canvas_assignment_id="1"), "one line"),
])
def test_canvas_refuses_an_assignment_column_canvas_would_misread(settings: LmsExport, message: str,
                                                                  tmp_path: Path) -> None:
    with pytest.raises(CourseError, match=message):
        canvas_grades.write(_grades(), settings, tmp_path / "c.csv")


@pytest.mark.parametrize("value", ["12a", "1 2", "https://canvas/x/assignments/12", "-1", "١٢"])
def test_a_canvas_assignment_id_is_digits(value: str) -> None:
    with pytest.raises(CourseError, match="digits"):
        LmsExport(canvas_assignment_id=value)


def test_moodle_csv_by_email_leaves_out_students_without_one_and_refuses_a_shared_one(tmp_path: Path) -> None:
    settings = LmsExport(title="Custom Training Basics")
    path = tmp_path / "moodle.csv"
    left_out = moodle_grades.write(_grades(), settings, path)
    rows = _parse(path)
    assert rows[0] == ["Email address", "First name", "Last name", "Custom Training Basics"]
    assert left_out == ["late"]
    assert [r[0] for r in rows[1:]] == ["ann@example.edu", "bob@example.edu", "'-x@example.edu", "al@example.edu"]
    assert rows[2] == ["bob@example.edu", "Bob", "Smith, Jr.", "10"]
    assert rows[3][1:] == [f"'{HOSTILE_NAMES[0]}", HOSTILE_NAMES[4], "0.33"]
    for row in rows:
        assert len(row) == 4 and all(_is_neutral(cell) for cell in row)
    for row in rows[1:]:
        assert PLAIN_DECIMAL.match(row[3])
    shared = Grades([*_grades().students, _student("twin", 3.0, email="ANN@example.edu")], 16.0, {})
    with pytest.raises(CourseError, match=r"share one email address.*ann, twin"):
        moodle_grades.write(shared, settings, path)


def test_moodle_csv_by_id_number_uses_the_student_id(tmp_path: Path) -> None:
    path = tmp_path / "moodle.csv"
    assert moodle_grades.write(_grades(), LmsExport(moodle_key="idnumber", moodle_grade_item="Lab 3"), path) == []
    rows = _parse(path)
    assert rows[0] == ["ID number", "First name", "Last name", "Lab 3"]
    assert [r[0] for r in rows[1:]] == ["ann", "bob", "'=cmd", "late", "absent"]


def test_parts_csv_has_each_group_the_total_the_penalty_and_the_final_score(tmp_path: Path) -> None:
    path = tmp_path / "parts.csv"
    parts_csv.write(_grades(), path)
    rows = _parse(path)
    assert rows[0] == ["student_id", "model", "loss", "train", "convergence", "plot", "total", "late_penalty", "final"]
    assert rows[1] == ["ann", "4", "3", "3", "3", "3", "16", "0", "16"]
    assert rows[2][0] == "bob" and rows[2][6:] == ["12.5", "2.5", "10"]
    assert rows[3][0] == "'=cmd" and rows[4][6:] == ["4", "9", "0"]
    assert rows[5] == ["absent", "0", "0", "0", "0", "0", "0", "0", "0"]


def test_coursekit_scores_total_after_the_penalty_never_goes_below_zero_as_in_every_export() -> None:
    # A manual score lowered after grading can leave a recorded penalty above the raw score.
    maxima = {"test_model": 4.0, "test_loss": 4.0}
    late = scores.table({"x": {"test_model": 2.0, "test_loss": 0.5}}, maxima, ["x"], {"x": 3.0})
    assert late.splitlines()[-1].split()[-2:] == ["-3", "0"]
    assert StudentGrade("x", raw=2.5, penalty=3.0).final == 0


def _feedback_course(tmp_path: Path, students: list[str]) -> Course:
    course = Course(tmp_path / "course")
    for student in students:
        folder = course.feedback / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / f"{ASSIGNMENT}.html").write_text(f"<html>feedback for {student}</html>")
    return course


def _moodle_archive(path: Path, folders: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as handle:
        for folder in folders:
            handle.writestr(f"{folder}/{ASSIGNMENT}.ipynb", "{}")
    return path


def moodle_reads(entry: str) -> tuple[str, str] | None:
    """Moodle's is_valid_filename_for_import: (participant id, plugin) of the first path part that names one."""
    for part in entry.split("/"):
        info = part.split("_", 4)
        if len(info) >= 4 and info[1].isdigit():
            return info[1], f"{info[2]}_{info[3]}"
    return None


def test_moodle_pack_names_each_folder_as_moodles_download_with_the_participant_id(tmp_path: Path) -> None:
    names = {"ann": ("Ann", "Lee"), "bob": ("Bob", "Smith_Jones"), "cy": ("Cy", "Twin"), "cy2": ("Cy", "Twin"),
             "dan": ("Dan", "Nowhere"), "eve": ("", ""), "fay": ("Fay", "Link")}
    students = [StudentGrade(s, first_name=f, last_name=last, submitted=True) for s, (f, last) in names.items()]
    course = _feedback_course(tmp_path, list(names))
    # A feedback file that is a link to somewhere else is never packed.
    link = course.feedback / "fay" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    link.unlink()
    link.symlink_to(tmp_path / "secret.txt")
    (tmp_path / "secret.txt").write_text("not feedback")
    archive = _moodle_archive(tmp_path / "download.zip", [
        "Ann Lee_1001_assignsubmission_file_", "Bob Smith Jones_1002_assignsubmission_file_",
        "Cy Twin_1003_assignsubmission_file_", "Fay Link_1004_assignsubmission_file_",
        "Gus Gone_1005_assignsubmission_onlinetext_",
    ])
    pack = feedback_pack.pack_moodle(course, students, archive)
    assert pack.path == course.root / "feedback_packs" / f"{ASSIGNMENT}_moodle_feedback.zip"
    assert sorted(pack.packed) == ["ann", "bob"]
    assert set(pack.left_out) == {"cy", "cy2", "dan", "eve", "fay"}
    assert "no feedback file" in pack.left_out["fay"] and "no name" in pack.left_out["eve"]
    with zipfile.ZipFile(pack.path) as handle:
        entries = sorted(handle.namelist())
        assert entries == [f"Ann Lee_1001_assignsubmission_file_/{ASSIGNMENT}_feedback.html",
                           f"Bob Smith Jones_1002_assignsubmission_file_/{ASSIGNMENT}_feedback.html"]
        assert [moodle_reads(e) for e in entries] == [("1001", "assignsubmission_file"),
                                                      ("1002", "assignsubmission_file")]
        assert handle.read(entries[0]) == b"<html>feedback for ann</html>"


def test_moodle_participants_come_from_the_archive_folder_names(tmp_path: Path) -> None:
    folder = tmp_path / "unpacked"
    for name in ["Ann Lee_1001_assignsubmission_file_", "notes.txt", "x_y_z"]:
        (folder / name).mkdir(parents=True)
    assert feedback_pack.moodle_participants(folder) == {"1001": "Ann Lee"}
    with pytest.raises(CourseError, match="no folder named"):
        feedback_pack.moodle_participants(_moodle_archive(tmp_path / "other.zip", ["random"]))
    (tmp_path / "not.zip").write_text("text")
    with pytest.raises(CourseError, match="not a zip"):
        feedback_pack.moodle_participants(tmp_path / "not.zip")


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b\\c", "_under_score_", "\x00ctl\x1b", ".hidden", "", "名前"])
def test_a_name_in_a_pack_is_one_safe_path_component(name: str) -> None:
    component = feedback_pack.safe_component(name)
    assert component and "/" not in component and "\\" not in component and "_" not in component
    assert not component.startswith(".") and not any(ord(ch) < 32 for ch in component)


def test_canvas_pack_names_files_by_canvas_user_id_with_a_manifest(tmp_path: Path) -> None:
    students = [StudentGrade("ann", first_name="Ann", last_name="Lee", lms_user_id="101", submitted=True),
                StudentGrade("=x", first_name="@Eve", last_name="O_Neil/..", lms_user_id="102", submitted=True),
                StudentGrade("noid", first_name="No", last_name="Id", submitted=True)]
    course = _feedback_course(tmp_path, ["ann", "=x", "noid"])
    pack = feedback_pack.pack_canvas(course, students)
    assert pack.packed == ["ann", "=x"] and list(pack.left_out) == ["noid"]
    with zipfile.ZipFile(pack.path) as handle:
        names = sorted(handle.namelist())
        assert names == ["Lee Ann_101_custom_training_basics_feedback.html",
                         "O Neil .. Eve_102_custom_training_basics_feedback.html", "manifest.csv"]
        manifest = list(csv.reader(io.StringIO(handle.read("manifest.csv").decode())))
    assert manifest[0] == ["canvas_user_id", "student_id", "name", "file"]
    assert manifest[2][:2] == ["102", "'=x"]


def test_feedback_pack_for_moodle_without_the_archive_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["feedback", "--pack", "moodle"], course=Course(tmp_path)) == 1
    assert "--moodle-archive" in capsys.readouterr().err
    assert not (tmp_path / "feedback_packs").exists()


def test_canvas_export_without_an_assignment_id_says_where_to_set_it_before_anything_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    course = Course(tmp_path)
    shutil.copy(Path(cli.__file__).parents[1] / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    assert cli.main(["export", "--format", "canvas"], course=course) == 1
    assert "c.LmsExport.canvas_assignment_id in nbgrader_config.py" in capsys.readouterr().err
    assert not (tmp_path / "grades_canvas.csv").exists()


def test_export_formats_are_options_of_the_existing_command() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["export", "--format", "moodle"])
    assert args.format == "moodle" and args.to is None
    assert parser.parse_args(["export"]).format == "nbgrader"
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "--format", "excel"])
    assert parser.parse_args(["feedback", "--pack", "canvas"]).pack == "canvas"


ROSTER = {  # made-up roster data for the demo cohort: names with commas, quotes and a formula
    "correct_reference": ("Ada", "Lovelace, Jr.", "ada@example.edu", "2001"),
    "loss_sum": ('=HYPERLINK("http://x")', 'O"Brien', "-loss@example.edu", "2002"),
    "train_only_w": ("Tom", "Ng", "tom@example.edu", ""),
}


def _roster(course: Course, students: list[str]) -> None:
    with open_gradebook(course.db_url) as gradebook:
        for number, student in enumerate(students):
            first, last, email, lms = ROSTER.get(student, (f"First{number}", f"Last{number}",
                                                           f"{student}@example.edu", str(3000 + number)))
            gradebook.update_or_create_student(student, first_name=first, last_name=last, email=email,
                                               lms_user_id=lms or None)


def copy_graded(graded: Course, target: Path) -> Course:
    """A full copy of the graded demo course (gradebook, submissions, autograded, feedback), to change freely."""
    shutil.copytree(graded.root, target, symlinks=True)
    return Course(target)


@pytest.mark.slow
def test_canvas_moodle_and_parts_csv_from_the_demo_cohort_agree_with_the_gradebook(
    graded: Course, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    course = copy_graded(graded, tmp_path / "course")
    with open(course.root / "nbgrader_config.py", "a") as config:
        config.write('\nc.LmsExport.title = "Custom Training Basics"\nc.LmsExport.canvas_assignment_id = "424242"\n'
                     'c.LmsExport.canvas_sis_user_id = "student_id"\n')
    cells = scores.cell_scores(course.db_url)
    _roster(course, sorted(cells))
    # One late student, as nbgrader records it while grading: the exports subtract it.
    with open_gradebook(course.db_url) as gradebook:
        notebook = gradebook.find_submission(ASSIGNMENT, "correct_reference").notebooks[0]
        notebook.late_submission_penalty = 3.8
        gradebook.db.commit()
    for fmt in ("canvas", "moodle", "parts"):
        assert cli.main(["export", "--format", fmt], course=course) == 0, capsys.readouterr().err
    out = capsys.readouterr()
    assert "grades (canvas): " in out.out and "train_only_w" in out.err  # no Canvas user id: listed
    # grades.csv as `nbgrader export` writes it (the exporter nbgrader_config.py names), in this process to save
    # an nbgrader start.
    with open_gradebook(course.db_url) as gradebook:
        SafeCsvExportPlugin(to=str(course.root / "grades.csv")).export(gradebook)

    expected = {s: sum(c.values()) for s, c in cells.items()}
    expected["correct_reference"] -= 3.8
    with open(course.root / "grades.csv", newline="") as handle:
        nbgrader_export = {row["student_id"]: float(row["score"]) for row in csv.DictReader(handle)}
    assert nbgrader_export == pytest.approx(expected)
    assert load(course.db_url).max_score == sum(scores.max_cell_points(course.db_url).values())

    canvas = _parse(course.root / "grades_canvas.csv")
    assert canvas[0][-1] == "Custom Training Basics (424242)"
    canvas_by_id = check_canvas_rules(canvas)
    assert canvas[1][5] == plain_decimal(sum(scores.max_cell_points(course.db_url).values()))
    students = {row[2].lstrip("'"): row for row in canvas[2:]}
    assert set(students) == set(cells)
    for student, row in students.items():
        assert float(row[5]) == pytest.approx(expected[student], abs=0.005), student
    assert students["correct_reference"][:2] == ["Lovelace, Jr., Ada", "2001"]
    assert students["loss_sum"][0] == "O\"Brien, =HYPERLINK(\"http://x\")"
    assert canvas_by_id["2001"] == plain_decimal(expected["correct_reference"])

    moodle = _parse(course.root / "grades_moodle.csv")
    assert moodle[0] == ["Email address", "First name", "Last name", "Custom Training Basics"]
    by_email = {row[0]: row for row in moodle[1:]}
    assert len(by_email) == len(cells)
    assert by_email["'-loss@example.edu"][1] == "'=HYPERLINK(\"http://x\")"
    assert float(by_email["ada@example.edu"][3]) == pytest.approx(expected["correct_reference"])
    for row in moodle[1:]:
        assert PLAIN_DECIMAL.match(row[3]) and all(_is_neutral(cell) for cell in row)

    parts = {row[0]: row for row in _parse(course.root / "grades_parts.csv")[1:]}
    for student, cell_scores in cells.items():
        groups = scores.by_group(cell_scores)
        row = parts[student]
        assert [float(v) for v in row[1:6]] == pytest.approx([groups[g] for g in scores.GROUPS])
        assert float(row[8]) == pytest.approx(expected[student], abs=0.005)
    assert parts["correct_reference"][7] == "3.8"
    table = scores.table(cells, scores.max_cell_points(course.db_url), ["correct_reference"],
                         scores.late_penalties(course.db_url))
    assert table.splitlines()[-1].split()[-2:] == ["-3.8", parts["correct_reference"][8]]

    # The demo cohort's real feedback, packed (the archive's folders named as Moodle's download names them): every
    # student with a roster name, for Moodle, and every one with a Canvas user id, for Canvas; each file exactly the
    # feedback nbgrader wrote.
    roster = load(course.db_url).students
    archive = _moodle_archive(tmp_path / "moodle-download.zip", [
        re.sub(r"[\x00-\x1f&<>\"`|':\\/]", "", f"{s.first_name} {s.last_name}".replace("_", " "))
        + f"_{5000 + n}_assignsubmission_file_"
        for n, s in enumerate(roster)])
    moodle_pack = feedback_pack.pack_moodle(course, [s for s in roster if s.submitted], archive)
    assert sorted(moodle_pack.packed) == sorted(cells) and not moodle_pack.left_out
    canvas_pack = feedback_pack.pack_canvas(course, [s for s in roster if s.submitted])
    assert canvas_pack.left_out.keys() == {"train_only_w"}
    with zipfile.ZipFile(moodle_pack.path) as handle:
        for n, student in enumerate(roster):
            folder = next(e for e in handle.namelist() if moodle_reads(e) == (str(5000 + n), "assignsubmission_file"))
            html = course.feedback / student.student_id / ASSIGNMENT / f"{ASSIGNMENT}.html"
            assert handle.read(folder) == html.read_bytes()
