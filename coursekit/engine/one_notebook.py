"""Grade one notebook file exactly as `make grade` would, in the sandbox, without touching the course.

`pytest grader_tests --notebook PATH` (grader_tests/conftest.py) uses it: the notebook is any file, a
student's included, so its code runs where a submission's runs, in a kernel forked from the warm parent and
confined by coursekit/kernels/sandbox.py, never in the pytest process. A scratch course (this course's source,
release and config, a gradebook of its own) holds it as the only submission; nbgrader's autograde with the
kit's steps (restored test cells, the observer, the judge) grades it; each test cell's verdict and score is
read back from the scratch course, which is then removed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from coursekit import ASSIGNMENT
from coursekit.course.directory import Course
from coursekit.engine import intake
from coursekit.exports import scores

STUDENT = "notebook"
KIT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str
    points: float
    max_points: float


def _message(cell: nbformat.NotebookNode) -> str:
    errors = [f"{o.get('ename', '')}: {o.get('evalue', '')}" for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    if errors:
        return "\n".join(errors)
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream").strip()


def grade(notebook: Path, course: Course | None = None) -> dict[str, Verdict]:
    """Each test cell's verdict on `notebook`, by grade id. Raises CourseError when the sandbox is not there."""
    source = course or Course(KIT)
    with tempfile.TemporaryDirectory(prefix="coursekit-notebook-") as scratch:
        scratch_course = source.scratch_copy(Path(scratch) / "course")
        scratch_course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
        scratch_course.submit(STUDENT, notebook)
        # What intake takes (coursekit/engine/intake.py) is what nbgrader grades, as in `make grade`.
        rejected = {r.student_id: r.reason for r in intake.screen(scratch_course, [STUDENT]).rejected}
        scratch_course.nbgrader("autograde", ASSIGNMENT, intake.NBGRADER_OPTION, "--force", "--student", STUDENT,
                                quiet=True, warm=True)
        maxima = scores.max_cell_points(scratch_course.db_url)
        got = scores.cell_scores(scratch_course.db_url).get(STUDENT, {})
        graded = scratch_course.autograded / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        cells = {c.metadata["nbgrader"]["grade_id"]: c for c in nbformat.read(graded, as_version=4).cells
                 if c.metadata.get("nbgrader", {}).get("grade_id")} if graded.is_file() else {}
    verdicts = {}
    for grade_id, max_points in maxima.items():
        points = got.get(grade_id, 0.0)
        message = rejected.get(STUDENT) or (_message(cells[grade_id]) if grade_id in cells else "not graded")
        verdicts[grade_id] = Verdict(points == max_points, message, points, max_points)
    return verdicts
