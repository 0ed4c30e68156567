"""nbgrader's exchange in the course (nbgrader_config.py): release, submit, collect, feedback out, `nbgrader list`;
and `coursekit feedback --student ID`.

The end-to-end test uses a copy of the graded demo in which one student went through the whole exchange as a
student does (tests/conftest.py, `exchange_course`): fetch_assignment, submit, then the instructor's collect and
`coursekit grade --student`.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime
from pathlib import Path

import pytest
from nbgrader.utils import notebook_hash

from coursekit import ASSIGNMENT, COURSE_ID, cli
from coursekit.course import cohort
from coursekit.course.directory import Course
from coursekit.engine import intake, workers

from .conftest import EXCHANGE_STUDENT, EXTRA_STUDENTS, ExchangeCourse, copy_course

SECRET = "0123456789abcdef" * 8  # as nbgrader submit writes it: secrets.token_hex(64)


def _submission(course: Course, student: str, secret: bytes | None) -> Path:
    folder = course.submitted / student / ASSIGNMENT
    folder.mkdir(parents=True)
    (folder / f"{ASSIGNMENT}.ipynb").write_bytes(course.release_notebook.read_bytes())
    if secret is not None:
        (folder / intake.SECRET).write_bytes(secret)
    return folder


# ---------------------------------------------------------------- intake keeps nbgrader's submission secret


def test_intake_stages_the_submission_secret(tmp_path: Path) -> None:
    course = copy_course(tmp_path / "course")
    _submission(course, "ann", SECRET.encode())
    _submission(course, "bob", None)
    outcome = intake.screen(course, ["ann", "bob"])
    assert outcome.staged == ["ann", "bob"] and not outcome.notes
    staged = course.root / intake.FOLDER
    assert (staged / "ann" / ASSIGNMENT / intake.SECRET).read_text() == SECRET
    assert not (staged / "bob" / ASSIGNMENT / intake.SECRET).exists()


@pytest.mark.parametrize("kind", ["not hex", "too long", "empty", "symlink", "folder", "fifo"])
def test_intake_drops_a_secret_that_is_not_nbgraders(tmp_path: Path, kind: str) -> None:
    """The secret names a file in the exchange: only a plain, short hex string is kept, and the notebook is graded."""
    course = copy_course(tmp_path / "course")
    folder = _submission(course, "ann", None)
    secret = folder / intake.SECRET
    if kind == "not hex":
        secret.write_text("../../../etc/passwd")
    elif kind == "too long":
        secret.write_text("a" * 2000)
    elif kind == "empty":
        secret.write_text("")
    elif kind == "symlink":
        (tmp_path / "elsewhere").write_text(SECRET)
        secret.symlink_to(tmp_path / "elsewhere")
    elif kind == "folder":
        secret.mkdir()
    else:
        os.mkfifo(secret)
    outcome = intake.screen(course, ["ann"])
    assert outcome.staged == ["ann"] and not outcome.rejected
    assert not (course.root / intake.FOLDER / "ann" / ASSIGNMENT / intake.SECRET).exists()
    assert any("exchange" in note for note in outcome.notes["ann"]), outcome.notes


def test_submitted_time_is_read_as_intake_reads_it(tmp_path: Path) -> None:
    """What `make grade` compares with the graded submission's time to find resubmissions."""
    course = copy_course(tmp_path / "course")
    folder = _submission(course, "ann", None)
    assert intake.submitted_time(course, "ann") is None
    (folder / intake.TIMESTAMP).write_text("2026-12-01 10:00:00.000000 UTC")
    assert intake.submitted_time(course, "ann") == datetime(2026, 12, 1, 10, 0)
    (folder / intake.TIMESTAMP).unlink()
    (folder / intake.TIMESTAMP).symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").write_text("2030-01-01 00:00:00 UTC")
    assert intake.submitted_time(course, "ann") is None
    assert intake.submitted_time(course, "nobody") is None


# ---------------------------------------------------------------- release_feedback: who is released, who is listed


def test_release_feedback_releases_exchange_submissions_and_lists_the_others(tmp_path: Path) -> None:
    """Real `nbgrader release_feedback` with the course's config, on feedback pages written by hand (no kernel)."""
    course = copy_course(tmp_path / "course")
    for student, secret in (("ann", SECRET), (".dot", SECRET[::-1]), ("lms_student", None)):
        folder = course.feedback / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / f"{ASSIGNMENT}.html").write_text(f"<p>feedback for {student}</p>")
        (folder / "timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC")
        if secret:
            (folder / intake.SECRET).write_text(secret)
    result = course.nbgrader("release_feedback", ASSIGNMENT, quiet=True)
    outbound = course.root / "exchange" / COURSE_ID / "feedback"
    expected = {f"{notebook_hash(secret=s, notebook_id=ASSIGNMENT)}.html": f"<p>feedback for {who}</p>"
                for who, s in (("ann", SECRET), (".dot", SECRET[::-1]))}
    assert {p.name: p.read_text() for p in outbound.iterdir()} == expected
    assert "1 student(s) who did not submit through it" in result.stdout and "lms_student" in result.stdout


# ---------------------------------------------------------------- coursekit feedback --student ID


def test_feedback_for_an_unknown_or_refused_student_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    course = copy_course(tmp_path / "course")
    (course.autograded / "ann" / ASSIGNMENT).mkdir(parents=True)
    assert cli.main(["feedback", "--student", "bob"], course=course) == 1
    err = capsys.readouterr().err
    assert "no graded submission for 'bob'" in err and "graded students: ann" in err
    _submission(course, "bob", None)
    assert cli.main(["feedback", "--student", "bob"], course=course) == 1
    assert "`make grade STUDENT=bob` grades it first" in capsys.readouterr().err
    assert cli.main(["feedback", "--student", "*"], course=course) == 1
    assert "refusing the student id '*'" in capsys.readouterr().err
    assert not course.feedback.exists()


# ---------------------------------------------------------------- end to end: from the student's submit to their fetch


@pytest.mark.slow
def test_feedback_goes_out_through_the_exchange(exchange_course: ExchangeCourse, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    made = exchange_course.copy(tmp_path)
    course = made.course
    # The instructor's `nbgrader list` (its listing is INFO lines): the released assignment, the student's submission.
    talking = dataclasses.replace(course, verbose=True)
    assert f"{COURSE_ID} {ASSIGNMENT}" in talking.nbgrader("list", quiet=True).stdout
    assert f"{COURSE_ID} {EXCHANGE_STUDENT} {ASSIGNMENT}" in talking.nbgrader("list", "--inbound", quiet=True).stdout

    # Only this student's feedback is written; the secret came with the graded submission.
    other = course.feedback / "correct_tf_module" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    other_before = other.stat().st_mtime_ns
    capsys.readouterr()
    assert cli.main(["feedback", "--student", EXCHANGE_STUDENT], course=course) == 0
    assert f"feedback: feedback/{EXCHANGE_STUDENT}/{ASSIGNMENT}/{ASSIGNMENT}.html" in capsys.readouterr().out
    assert other.stat().st_mtime_ns == other_before
    folder = course.feedback / EXCHANGE_STUDENT / ASSIGNMENT
    secret = (folder / intake.SECRET).read_text()
    page = (folder / f"{ASSIGNMENT}.html").read_bytes()

    result = course.nbgrader("release_feedback", ASSIGNMENT, quiet=True)
    outbound = course.root / "exchange" / COURSE_ID / "feedback"
    assert [p.name for p in outbound.iterdir()] == [f"{notebook_hash(secret=secret, notebook_id=ASSIGNMENT)}.html"]
    assert (outbound / f"{notebook_hash(secret=secret, notebook_id=ASSIGNMENT)}.html").read_bytes() == page
    others = len(cohort.STUDENTS) + len(EXTRA_STUDENTS) - 1  # all of the demo course but the one who submitted
    assert f"{others} student(s) who did not submit through it" in result.stdout, result.stdout

    # The student: `nbgrader list` says feedback is ready, fetch_feedback brings exactly the released page.
    assert "(feedback ready to be fetched)" in made.student("list", "--cached").stderr
    made.student("fetch_feedback", ASSIGNMENT)
    fetched = list((made.student_home / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html"))
    assert len(fetched) == 1 and fetched[0].read_bytes() == page
    assert "(feedback already fetched)" in made.student("list", "--cached").stderr

    # A resubmission collected after grading is graded again by plain `make grade`, as nbgrader's autograde
    # would (its timestamp.txt is newer than the graded one's); nobody else is.
    assert workers.pending(course, False, intake.find(course).students) == []
    made.student("submit", ASSIGNMENT)
    course.nbgrader("collect", "--update", ASSIGNMENT, quiet=True)
    assert workers.pending(course, False, intake.find(course).students) == [EXCHANGE_STUDENT]
