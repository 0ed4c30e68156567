"""Which grades are stale: recorded before the assignment (its cells, points or checks) last changed.

Every autograded notebook carries, in its metadata, a fingerprint of what produced its grades
(`StampGradedWith`, the last step of nbgrader's autograde, in the one gradebook writer and in plain
`nbgrader autograde` alike):
- the assignment as the gradebook records it since the last `make release`: each grade cell's points,
  each protected cell's source, hidden tests included (nbgrader's own checksums), so the release's
  cells and points;
- the hidden checks (`grader_tests/`) and the observer the kernel runs (`grader_observe/`), byte for byte;
- the due date and the late penalty rule (coursekit/course/late.py), which decide each submission's penalty,
  and the grading policy for convergence and plots (coursekit/steps/policy.py).
A student whose notebook's fingerprint is not the current one is stale: `make grade` regrades exactly
them, and exports and feedback refuse to go out until it has. Why the notebook and not a table of the
kit's: the fingerprint is written in the same file as the outputs it vouches for, by the step that
wrote them, so the two cannot disagree, and removing a notebook (`make clean`) removes its fingerprint
with it. docs/grading.md, "Changing the assignment", says how to change points, messages and checks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbformat import NotebookNode
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets.config import Config

from coursekit import ASSIGNMENT
from coursekit.course import late
from coursekit.course.directory import Course
from coursekit.course.gradebook import open_gradebook
from coursekit.steps import policy

METADATA_KEY = "coursekit"
# The packages whose code decides the points: the checks (in the grader) and the observer (in the kernel).
GRADING_PACKAGES = ("grader_tests", "grader_observe")


def _package_files(name: str) -> list[tuple[str, bytes]]:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the package {name} is not importable: is the course kit installed (make venv)?")
    root = Path(next(iter(spec.submodule_search_locations)))
    return [(f"{name}/{path.relative_to(root).as_posix()}", path.read_bytes())
            for path in sorted(root.rglob("*")) if path.is_file() and "__pycache__" not in path.parts]


def assignment_structure(gradebook: Gradebook, assignment: str) -> dict[str, Any]:
    """What the gradebook holds about the assignment that decides scores, as plain data."""
    found = gradebook.find_assignment(assignment)
    due = found.duedate.isoformat() if found.duedate else None
    return {
        notebook.name: {
            "due": due,
            "points": {cell.name: float(cell.max_score) for cell in notebook.grade_cells},
            "cells": {cell.name: [cell.cell_type, bool(cell.locked), cell.checksum] for cell in notebook.source_cells},
        }
        for notebook in found.notebooks
    }


def grading_rule(config: Config) -> dict[str, Any]:
    """What nbgrader_config.py sets that decides scores: the late rule and the grading policy (as plain data)."""
    return {**late.rule(config), **policy.rule(config)}


def fingerprint_of(structure: dict[str, Any], late_rule: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps([structure, late_rule], sort_keys=True, default=str).encode())
    for name in GRADING_PACKAGES:
        for relative, data in _package_files(name):
            digest.update(relative.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()[:32]


def current(course: Course) -> tuple[str, dict[str, Any]] | None:
    """(fingerprint, structure) of the assignment as released now, or None when it is not released."""
    with open_gradebook(course.db_url) as gradebook:
        try:
            structure = assignment_structure(gradebook, ASSIGNMENT)
        except MissingEntry:
            return None
    return fingerprint_of(structure, grading_rule(late.course_config(course))), structure


class StampGradedWith(NbGraderPreprocessor):  # enabled by default, unlike nbconvert's base
    """Write into the autograded notebook's metadata the fingerprint of what graded it, and each cell's points."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gradebook:
            structure = assignment_structure(gradebook, info["assignment"])
        # The late rule as coursekit reads it, from the course's nbgrader_config.py only: a user-level
        # nbgrader config seen here but not there would make every grade look stale, forever.
        root = self.config.CourseDirectory.get("root")
        rule = grading_rule(late.course_config(Course(Path(root))) if root else self.config)
        nb.metadata[METADATA_KEY] = {
            "graded_with": fingerprint_of(structure, rule),
            "points": structure[info["notebook"]]["points"],
        }
        return nb, resources


def _stamp(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            stamp = json.load(handle).get("metadata", {}).get(METADATA_KEY, {})
    except (OSError, ValueError, AttributeError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def autograded_notebooks(course: Course, student: str, structure: dict[str, Any]) -> list[Path]:
    return [course.autograded / student / ASSIGNMENT / f"{notebook}.ipynb" for notebook in sorted(structure)]


def stale(course: Course, students: list[str]) -> set[str]:
    """Of `students`, those with an autograded notebook that another version of the assignment graded."""
    now = current(course)
    if now is None:
        return set()
    fingerprint, structure = now
    return {
        student for student in students
        if any(path.is_file() and _stamp(path).get("graded_with") != fingerprint
               for path in autograded_notebooks(course, student, structure))
    }


@dataclass(frozen=True)
class ManualScore:
    """A manual score that may no longer fit its cell, and why."""

    student: str
    cell: str
    score: float
    max_score: float
    why: str

    def line(self) -> str:
        return f"{self.student}  {self.cell}  {self.score:g}/{self.max_score:g}: {self.why}"


def manual_scores_to_check(course: Course) -> list[ManualScore]:
    """Manual scores that no longer fit: over the cell's points, given when the cell had other points, or
    kept through a regrade (nbgrader then marks them as needing manual grading until a grader saves them)."""
    found = []
    with open_gradebook(course.db_url) as gradebook:
        try:
            submissions = gradebook.assignment_submissions(ASSIGNMENT)
        except MissingEntry:
            return []
        for submission in submissions:
            for notebook in submission.notebooks:
                graded_at = _stamp(course.autograded / submission.student_id / ASSIGNMENT
                                   / f"{notebook.name}.ipynb").get("points", {})
                for grade in notebook.grades:
                    if grade.manual_score is None:
                        continue
                    score, points = float(grade.manual_score), float(grade.max_score)
                    before = graded_at.get(grade.name)
                    if score > points:
                        why = f"over the cell's {points:g} points"
                    elif isinstance(before, int | float) and float(before) != points:
                        why = f"given when the cell was worth {before:g} points, now {points:g}"
                    elif grade.needs_manual_grade:
                        why = ("kept through a regrade: check it still fits (formgrader lists it as needing "
                               "manual grading until you save it)")
                    else:
                        continue
                    found.append(ManualScore(submission.student_id, grade.name, score, points, why))
    return sorted(found, key=lambda m: (m.student, m.cell))


def report_manual_scores(course: Course) -> str:
    """The list of manual scores to check, as lines for the instructor, or "" when there are none."""
    misfits = manual_scores_to_check(course)
    if not misfits:
        return ""
    lines = [f"{len(misfits)} manual score(s) to check (set them in formgrader, or `nbgrader` commands):"]
    return "\n".join([*lines, *(f"  {m.line()}" for m in misfits)])
