"""The due date and the late penalty: set in nbgrader_config.py, and nowhere else.

    c.Deadline.due_date = "2026-12-15 23:59:00 Europe/Berlin"   # "" for none
    c.LatePenalty.percent_per_day = 10                          # % of the score, per day or part of one

nbgrader keeps the due date in the gradebook and computes each submission's penalty while autograding
(`AssignLatePenalties`, from `submitted/<student>/<assignment>/timestamp.txt`); its export and its
feedback subtract it. `make release` and `make grade` copy the configured due date into the gradebook
(`sync_due_date`), so a date set in formgrader is replaced by this one; `coursekit scores` subtracts the
same recorded penalty, so all three agree. Both settings are part of what graded a notebook
(coursekit/course/staleness.py): after changing either, `make grade` regrades the submissions.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Any

from nbgrader.api import MissingEntry
from nbgrader.plugins import LateSubmissionPlugin
from nbgrader.utils import parse_utc
from traitlets import Float, Unicode
from traitlets.config import Config, Configurable
from traitlets.config.loader import PyFileConfigLoader

from coursekit import ASSIGNMENT
from coursekit.course.directory import Course, CourseError
from coursekit.course.gradebook import open_gradebook

DAY = 24 * 3600


class Deadline(Configurable):
    due_date = Unicode(
        "", help='the assignment\'s due date, e.g. "2026-12-15 23:59:00 Europe/Berlin"; "" for none'
    ).tag(config=True)


class LatePenalty(LateSubmissionPlugin):
    """nbgrader's late penalty plugin ("none" or "zero"), plus a percentage of the score per day late."""

    percent_per_day = Float(
        0.0, help="percent of the score taken off per day late, a started day counting as a whole one; 0: none"
    ).tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float | None:
        if self.percent_per_day <= 0:
            return super().late_submission_penalty(student_id, score, total_seconds_late)
        days = math.ceil(total_seconds_late / DAY)
        return round(score * min(1.0, days * self.percent_per_day / 100), 2)


def rule(config: Config) -> dict[str, Any]:
    """The late rule the config sets, as plain data (part of the grading fingerprint)."""
    return {
        "due_date": config.Deadline.get("due_date", ""),
        "plugin": str(config.AssignLatePenalties.get("plugin_class", "")),
        **{f"{section}.{key}": value for section in ("LateSubmissionPlugin", "LatePenalty")
           for key, value in sorted(config[section].items())},
    }


def course_config(course: Course) -> Config:
    """nbgrader_config.py of `course`, as nbgrader loads it (once per version of the file, per process)."""
    path = course.root / "nbgrader_config.py"
    key = (str(path), hashlib.sha256(path.read_bytes()).hexdigest())  # not the mtime: too coarse for two quick edits
    if key not in _CONFIGS:
        _CONFIGS[key] = PyFileConfigLoader(path.name, path=str(course.root)).load_config()
    return _CONFIGS[key]


_CONFIGS: dict[tuple[str, str], Config] = {}


def due_date(course: Course) -> datetime | None:
    text = course_config(course).Deadline.get("due_date", "")
    if not text:
        return None
    try:
        return parse_utc(text)
    except (ValueError, OverflowError) as exc:
        raise CourseError(f"c.Deadline.due_date = {text!r} in nbgrader_config.py is not a date: {exc}") from None


def sync_due_date(course: Course) -> tuple[str, bool]:
    """Put the configured due date into the gradebook: (what it is, for the instructor; whether it changed)."""
    due = due_date(course)
    with open_gradebook(course.db_url) as gradebook:
        try:
            assignment = gradebook.find_assignment(ASSIGNMENT)
        except MissingEntry:
            return "", False
        shown = f"{due:%Y-%m-%d %H:%M:%S} UTC" if due else "none"
        if assignment.duedate == due:
            return f"due date: {shown}", False
        assignment.duedate = due
        gradebook.db.commit()
    return f"due date: {shown} (set from nbgrader_config.py)", True
