"""The gradebook: opening the course's (SQLite or PostgreSQL), and a structure-only copy for workers.

Workers run the real `nbgrader autograde` in scratch courses. nbgrader reads the assignment's structure
from a gradebook there (grade cells and their points, the source of every locked cell, which it puts
back before executing), and writes grades. Handing each worker a SQLite gradebook that holds that
structure and nothing else keeps the real gradebook, whatever its database, out of their reach: only
the single writer (coursekit/engine/workers.py) ever writes it.
"""

from __future__ import annotations

import os
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from coursekit import ASSIGNMENT, COURSE_ID
from coursekit.course.directory import Course, CourseError, nbgrader_executable


def open_gradebook(db_url: str) -> Gradebook:
    """nbgrader's Gradebook on `db_url`, for this course (so opening it adds no other course's row)."""
    # A new database gets nbgrader's alembic version, read by running `alembic`: make it this environment's.
    scripts = str(Path(nbgrader_executable()).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != scripts:
        os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])
    return Gradebook(db_url, course_id=COURSE_ID)


def require_release(course: Course) -> None:
    """Fail with what to do when the gradebook does not know the assignment yet."""
    hint = "run `make release` (nbgrader generate_assignment), with the same gradebook, first"
    if course.db_url.startswith("sqlite:///") and not Path(course.db_url.removeprefix("sqlite:///")).exists():
        raise CourseError(f"no gradebook yet at {course.db_url}: {hint}")
    with open_gradebook(course.db_url) as gradebook:
        try:
            gradebook.find_assignment(ASSIGNMENT)
        except MissingEntry:
            raise CourseError(f"the gradebook at {course.db_url} has no assignment {ASSIGNMENT!r}: {hint}") from None


def structure_only_gradebook(course: Course, target_dir: Path) -> Path:
    """A new SQLite gradebook in `target_dir` with the assignment's structure copied from the course's.

    Copies what nbgrader's generate_assignment records (the assignment, its notebooks, their grade,
    solution, task and source cells) through nbgrader's own API, and no student, submission or grade.
    The course's gradebook is only read.
    """
    require_release(course)
    target = target_dir / "gradebook.db"
    if target.exists():
        raise CourseError(f"{target} exists already; a structure-only gradebook is built into a new folder")
    target_dir.mkdir(parents=True, exist_ok=True)
    with open_gradebook(course.db_url) as real, open_gradebook(f"sqlite:///{target}") as copy:
        assignment = real.find_assignment(ASSIGNMENT)
        copy.add_assignment(ASSIGNMENT, duedate=assignment.duedate)
        for notebook in assignment.notebooks:
            copy.add_notebook(notebook.name, ASSIGNMENT, kernelspec=notebook.kernelspec)
            for cell in notebook.grade_cells:
                copy.add_grade_cell(
                    cell.name, notebook.name, ASSIGNMENT, max_score=cell.max_score, cell_type=cell.cell_type
                )
            for cell in notebook.solution_cells:
                copy.add_solution_cell(cell.name, notebook.name, ASSIGNMENT)
            for cell in notebook.task_cells:
                copy.add_task_cell(
                    cell.name, notebook.name, ASSIGNMENT, max_score=cell.max_score, cell_type=cell.cell_type
                )
            for cell in notebook.source_cells:
                copy.add_source_cell(
                    cell.name, notebook.name, ASSIGNMENT,
                    cell_type=cell.cell_type, locked=cell.locked, source=cell.source, checksum=cell.checksum,
                )
    return target
