"""A PostgreSQL gradebook: grading a cohort into a real server (started here) loses and duplicates nothing."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from coursekit import ASSIGNMENT, cli
from coursekit.course import cohort
from coursekit.course.directory import DB_URL_ENV, Course
from coursekit.course.gradebook import open_gradebook, structure_only_gradebook
from coursekit.exports import scores

from .conftest import REPO, copy_course
from .postgres.server import PostgresUnavailable, postgres_server

# 5 of the demo cohort, graded twice more by the rerun test: 2 correct, 3 wrong in different parts.
CORRECT = 2
_WRONG = [s.student_id for s in cohort.STUDENTS if s.loses]
STUDENTS = [s.student_id for s in cohort.STUDENTS if not s.loses][:CORRECT] + _WRONG[:: len(_WRONG) // 3][:3]
# Every table that grading writes, with the rows a graded cohort must have exactly once.
GRADING_TABLES = ("student", "submitted_assignment", "submitted_notebook", "grade", "comment")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    try:
        with postgres_server() as url:
            yield url
    except PostgresUnavailable as exc:
        pytest.fail(f"could not start the test PostgreSQL server: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Course:
    """A course released into PostgreSQL and graded once on the parallel path, through the CLI's --db-url."""
    plain = copy_course(tmp_path_factory.mktemp("course"))
    for student in STUDENTS:
        plain.submit(student, plain.demo_notebook(student))
    assert cli.main(["release", "--db-url", postgres_url], course=plain) == 0
    assert cli.main(["grade", "--workers", "2", "--db-url", postgres_url], course=plain) == 0
    return dataclasses.replace(plain, gradebook_url=postgres_url)


def rows(db_url: str) -> dict[str, set[tuple[str, ...]]]:
    """Every grading row by table, as plain tuples (ids included), to compare runs."""
    engine = sqlalchemy.create_engine(db_url)
    try:
        with engine.connect() as connection:
            found = {table: connection.execute(sqlalchemy.text(f"SELECT * FROM {table}")) for table in GRADING_TABLES}
            return {table: {tuple(str(v) for v in row) for row in result} for table, result in found.items()}
    finally:
        engine.dispose()


def counts(db_url: str) -> dict[str, int]:
    return {table: len(found) for table, found in rows(db_url).items()}


def test_course_url_comes_from_one_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.delenv(DB_URL_ENV, raising=False)
    assert Course.here().db_url == f"sqlite:///{REPO / 'gradebook.db'}"
    monkeypatch.setenv(DB_URL_ENV, "postgresql://grader@db.example/course")
    assert Course.here().db_url == "postgresql://grader@db.example/course"
    assert Course.here("sqlite:////elsewhere.db").db_url == "sqlite:////elsewhere.db"
    # Scratch courses (tests, bench, workers) keep their own SQLite whatever the environment says ...
    scratch = Course(tmp_path)
    assert scratch.db_url == f"sqlite:///{tmp_path / 'gradebook.db'}"
    # ... and so does every nbgrader they run, which reads the URL in nbgrader_config.py.
    assert scratch.environment()[DB_URL_ENV] == scratch.db_url


@pytest.mark.slow
def test_grades_go_to_postgres_and_match_expected_scores(course: Course) -> None:
    assert not (course.root / "gradebook.db").exists(), "grading wrote an SQLite gradebook next to PostgreSQL"
    got = scores.cell_scores(course.db_url)
    expected = cohort.expected_scores(scores.max_cell_points(course.db_url))
    assert sorted(got) == sorted(STUDENTS)
    assert {s: got[s] for s in STUDENTS} == {s: expected[s] for s in STUDENTS}
    full_marks = {s for s in STUDENTS if sum(got[s].values()) == sum(scores.max_cell_points(course.db_url).values())}
    assert len(full_marks) == CORRECT, "a mixed cohort, right and wrong"


@pytest.mark.slow
def test_one_submission_per_student_and_one_grade_per_grade_cell(course: Course) -> None:
    with open_gradebook(course.db_url) as gradebook:
        notebooks = [nb.name for nb in gradebook.find_assignment(ASSIGNMENT).notebooks]
        grade_cells = sorted(cell.name for cell in gradebook.find_assignment(ASSIGNMENT).notebooks[0].grade_cells)
        assert sorted(s.id for s in gradebook.students) == sorted(STUDENTS)
        for student in STUDENTS:
            submissions = [s for s in gradebook.student_submissions(student) if s.assignment.name == ASSIGNMENT]
            assert len(submissions) == 1, student
            assert [nb.name for nb in submissions[0].notebooks] == notebooks, student
            assert sorted(g.name for g in submissions[0].notebooks[0].grades) == grade_cells, student
    found = counts(course.db_url)
    assert found["submitted_assignment"] == found["submitted_notebook"] == len(STUDENTS)
    assert found["grade"] == len(STUDENTS) * len(grade_cells)


@pytest.mark.slow
def test_reruns_duplicate_nothing(course: Course) -> None:
    before = rows(course.db_url)
    scores_before = scores.cell_scores(course.db_url)

    assert cli.main(["grade", "--workers", "2"], course=course) == 0
    assert rows(course.db_url) == before, "a rerun without --force changed the gradebook"

    assert cli.main(["grade", "--workers", "2", "--force"], course=course) == 0
    assert counts(course.db_url) == {table: len(found) for table, found in before.items()}
    assert scores.cell_scores(course.db_url) == scores_before


@pytest.mark.slow
def test_workers_get_the_structure_and_nothing_else(course: Course, tmp_path: Path) -> None:
    structure = structure_only_gradebook(course, tmp_path / "structure")
    with open_gradebook(course.db_url) as real, open_gradebook(f"sqlite:///{structure}") as copy:
        assert copy.students == [] and copy.assignment_submissions(ASSIGNMENT) == []
        for want, got in zip(real.find_assignment(ASSIGNMENT).notebooks, copy.find_assignment(ASSIGNMENT).notebooks,
                             strict=True):
            assert (got.name, got.kernelspec) == (want.name, want.kernelspec)
            assert {(c.name, c.max_score, c.cell_type) for c in got.grade_cells} == {
                (c.name, c.max_score, c.cell_type) for c in want.grade_cells
            }
            assert {c.name for c in got.solution_cells} == {c.name for c in want.solution_cells}
            assert {(c.name, c.source, c.checksum, c.locked) for c in got.source_cells} == {
                (c.name, c.source, c.checksum, c.locked) for c in want.source_cells
            }


@pytest.mark.slow
def test_export_and_alembic_upgrade_work_on_postgres(course: Course, tmp_path: Path) -> None:
    target = tmp_path / "grades.csv"
    assert cli.main(["export", "--to", str(target)], course=course) == 0
    exported = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(target.open())}
    totals = {student: sum(cells.values()) for student, cells in scores.cell_scores(course.db_url).items()}
    assert exported == pytest.approx(totals)
    # nbgrader's schema migrations (alembic) run against PostgreSQL too. (Its "Upgrading" line is INFO: verbose.)
    result = dataclasses.replace(course, verbose=True).nbgrader("db", "upgrade", quiet=True)
    assert "Upgrading postgresql://" in result.stdout
