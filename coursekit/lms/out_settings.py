"""Where the grades go in the LMS: set in nbgrader_config.py, block "Grades and feedback out to the LMS", and
nowhere else (docs/lms.md, "Grades and feedback out").

    c.LmsExport.title = "Custom Training Basics"     # the assignment's name in the LMS
    c.LmsExport.canvas_assignment_id = "123456"      # the number in the Canvas assignment's URL
"""

from __future__ import annotations

import re

from traitlets import Enum, TraitError, Unicode, validate
from traitlets.config import Configurable

from coursekit.course.directory import Course, CourseError
from coursekit.course.late import course_config

STUDENT_FIELDS = ("", "student_id", "email")


class LmsExport(Configurable):
    title = Unicode("Custom Training Basics", help="the assignment's title in the LMS").tag(config=True)
    canvas_assignment_id = Unicode(
        "", help="the Canvas assignment's id: the number at the end of its URL, .../assignments/<id>"
    ).tag(config=True)
    canvas_section = Unicode("", help="what the Canvas CSV's Section column says (Canvas ignores it on import)").tag(
        config=True
    )
    canvas_sis_user_id = Enum(
        STUDENT_FIELDS, "", help="the nbgrader student field written as Canvas's SIS User ID: '' (blank), "
        "'student_id' or 'email'"
    ).tag(config=True)
    canvas_sis_login_id = Enum(
        STUDENT_FIELDS, "", help="the nbgrader student field written as Canvas's SIS Login ID: '' (blank), "
        "'student_id' or 'email'"
    ).tag(config=True)
    moodle_key = Enum(
        ("email", "idnumber"), "email",
        help="how Moodle finds each student: 'email' (nbgrader's email) or 'idnumber' (nbgrader's student id as "
        "Moodle's ID number)",
    ).tag(config=True)
    moodle_grade_item = Unicode("", help="the Moodle CSV's grade column; '' for the title").tag(config=True)

    @validate("canvas_assignment_id")
    def _digits(self, proposal: dict[str, str]) -> str:
        value = proposal["value"].strip()
        if value and not re.fullmatch(r"[0-9]+", value):
            raise CourseError(f"c.LmsExport.canvas_assignment_id = {value!r} in nbgrader_config.py: Canvas's "
                              "assignment ids are digits, the number at the end of the assignment's URL")
        return value

    @property
    def moodle_column(self) -> str:
        return self.moodle_grade_item or self.title


def settings(course: Course) -> LmsExport:
    try:
        return LmsExport(config=course_config(course))
    except TraitError as exc:
        raise CourseError(f"c.LmsExport in nbgrader_config.py: {exc}") from None
