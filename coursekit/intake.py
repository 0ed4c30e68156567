"""Screen submissions before grading: a file nbgrader cannot grade is graded as blank, with the reason.

nbgrader fails a whole submission on a notebook it cannot read, and records nothing for it, so the
student would silently have no grade. Here each unreadable submission is moved aside to
`rejected/<student>/<assignment>/` (kept byte for byte) and replaced by the blank release notebook with a
first cell that says what was wrong. nbgrader then records 0 for every test cell, and the feedback tells
the student why. Everyone else is graded as usual.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat

from . import ASSIGNMENT
from .course import Course

# A solved notebook with its four figures is about 0.2 MB; anything this large is not an honest submission.
MAX_BYTES = 20 * 1024 * 1024
SOLUTION_IDS = ("model", "loss", "train")
REJECTED_MARK = "coursekit-rejected"


@dataclass(frozen=True)
class Rejection:
    student_id: str
    reason: str


def problem(path: Path) -> str | None:
    """Why `path` cannot be graded as this assignment's notebook, or None when it can."""
    if not path.is_file():
        return f"no {path.name} in the submission"
    size = path.stat().st_size
    if size == 0:
        return f"{path.name} is empty (0 bytes)"
    if size > MAX_BYTES:
        return f"{path.name} is {size / 2**20:.0f} MiB, over the {MAX_BYTES // 2**20} MiB limit for a notebook"
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"{path.name} is not UTF-8 text (bad byte at offset {exc.start}): save it again from Jupyter"
    try:
        json.loads(text)
    except ValueError as exc:
        return f"{path.name} is not valid JSON ({exc}): it was damaged, or is not a notebook"
    try:
        notebook = nbformat.reads(text, as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # nbformat raises several unrelated types for malformed notebooks
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{path.name} is not a valid Jupyter notebook ({first_line})"
    ids = {cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") for cell in notebook.cells}
    if not ids & set(SOLUTION_IDS):
        answers = ", ".join(SOLUTION_IDS)
        return f"{path.name} is not the {ASSIGNMENT} notebook: none of its answer cells ({answers}) is in it"
    return None


def is_stand_in(path: Path) -> bool:
    """True for a notebook this module wrote in place of a rejected submission."""
    try:
        return REJECTED_MARK in json.loads(path.read_text())["metadata"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def stand_in(release: nbformat.NotebookNode, reason: str) -> nbformat.NotebookNode:
    """The blank release, opened by a cell that tells the student why their file was not graded."""
    notebook = nbformat.from_dict(json.loads(json.dumps(release)))
    notebook.metadata[REJECTED_MARK] = reason
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell(
        f"**Your submission could not be graded: {reason}.**\n\n"
        "It was graded as the blank assignment (0 points). Your file is kept as you sent it; "
        "ask your instructor to regrade once you have submitted a working notebook."
    ))
    return notebook


def screen(course: Course, students: list[str]) -> list[Rejection]:
    """Replace each of `students`' unreadable submissions by a stand-in; return who and why."""
    release = nbformat.read(course.release_notebook, as_version=4)
    rejected = []
    for student in students:
        path = course.submitted_notebook(student)
        if path.is_file() and is_stand_in(path):
            rejected.append(Rejection(student, nbformat.read(path, as_version=4).metadata[REJECTED_MARK]))
            continue
        reason = problem(path)
        if reason is None:
            continue
        if path.exists():
            kept = course.root / "rejected" / student / ASSIGNMENT / path.name
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, kept)
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(stand_in(release, reason), path)
        rejected.append(Rejection(student, reason))
    return rejected
