"""Which students are completely graded: what a rerun may skip.

nbgrader writes a student's autograded folder before it executes anything and records grades one cell
at a time, so after a grader killed half-way (kill -9, a power cut) a folder can exist for a student
whose grades are missing or partial. Only the gradebook knows: a student is graded when every grade
cell of their submission has an automatic score and their autograded notebook is on disk, graded by
the assignment as it is now (coursekit/course/staleness.py: not stale after a change of points, cells or checks),
and no later submission came in since (its timestamp.txt newer than the graded one's, as nbgrader's
`collect --update` writes it; nbgrader's own autograde regrades those too).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

from nbgrader.api import MissingEntry

from coursekit import ASSIGNMENT
from coursekit.course.directory import Course
from coursekit.course.gradebook import open_gradebook
from coursekit.course.staleness import stale
from coursekit.engine.intake import submitted_time


def completely_graded(course: Course, students: list[str]) -> set[str]:
    done = set()
    with open_gradebook(course.db_url) as gradebook:
        try:
            assignment = gradebook.find_assignment(ASSIGNMENT)
        except MissingEntry:
            return set()
        expected = {cell.name for notebook in assignment.notebooks for cell in notebook.grade_cells}
        for student in students:
            try:
                submission = gradebook.find_submission(ASSIGNMENT, student)
            except MissingEntry:
                continue
            scored = {grade.name for notebook in submission.notebooks for grade in notebook.grades
                      if grade.auto_score is not None}
            on_disk = all((course.autograded / student / ASSIGNMENT / f"{notebook.name}.ipynb").is_file()
                          for notebook in assignment.notebooks)
            if expected and scored >= expected and on_disk and not _resubmitted(course, student, submission.timestamp):
                done.add(student)
    return done - stale(course, sorted(done))


def why_again(course: Course, student: str) -> str:
    """What `make grade` says of a student it grades again although their autograded folder exists."""
    with open_gradebook(course.db_url) as gradebook:
        try:
            graded_time = gradebook.find_submission(ASSIGNMENT, student).timestamp
        except MissingEntry:
            graded_time = None
    if _resubmitted(course, student, graded_time):
        return "a later submission came in since the last grade (its timestamp.txt is newer); grading it"
    return "graded only in part before (the grader was stopped); grading again"


def _resubmitted(course: Course, student: str, graded_time: datetime | None) -> bool:
    submitted = submitted_time(course, student)
    if submitted is None:
        return False
    return graded_time is None or _utc(submitted) > _utc(graded_time)


def _utc(moment: datetime) -> datetime:
    """Naive UTC, as nbgrader keeps timestamps in the gradebook."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def clear_partial(course: Course, students: list[str]) -> list[str]:
    """Remove the autograded folders of `students` (not completely graded, or stale), so nbgrader grades them
    again.

    nbgrader skips a student whose autograded folder exists; for one graded only in part (or by an earlier
    version of the assignment) that would keep those grades for good. The folder is the grader's own
    output, rebuilt by grading.
    """
    cleared = []
    for student in students:
        folder = course.autograded / student / ASSIGNMENT
        if folder.exists():
            shutil.rmtree(folder)
            cleared.append(student)
    return cleared
