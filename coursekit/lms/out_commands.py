"""`coursekit export --format canvas|moodle|parts` and `coursekit feedback --pack canvas|moodle`: options added to
the existing commands (coursekit/cli.py calls `add_options` once), each refusing stale grades as the export does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from coursekit.course import staleness
from coursekit.course.directory import Course, CourseError
from coursekit.engine.intake import shown
from coursekit.exports import grade_rows, parts_csv
from coursekit.lms import canvas_grades, feedback_pack, moodle_grades
from coursekit.lms.out_settings import settings

FORMATS = ("nbgrader", "canvas", "moodle", "parts")
DEFAULT_FILES = {"canvas": "grades_canvas.csv", "moodle": "grades_moodle.csv", "parts": "grades_parts.csv"}
NEEDS_ARCHIVE = ("--pack moodle needs --moodle-archive ZIP: Moodle's \"Download all submissions\" archive (or its "
                 "unpacked folder), whose folder names hold each participant id")
Run = Callable[[Course, argparse.Namespace], None]


def _listed(what: str, ids: list[str] | dict[str, str], shown_at_most: int = 8) -> None:
    if not ids:
        return
    items = [f"{shown(i)} ({ids[i]})" if isinstance(ids, dict) else shown(i) for i in sorted(ids)]
    more = f" and {len(items) - shown_at_most} more" if len(items) > shown_at_most else ""
    print(f"{len(items)} {what}: {', '.join(items[:shown_at_most])}{more}", file=sys.stderr)


def export_lms(course: Course, args: argparse.Namespace, require_current: Callable[[Course, str], None]) -> None:
    config = settings(course)
    if args.format == "canvas":  # a missing or unusable assignment id is said before anything else
        canvas_grades.assignment_column(config)
    require_current(course, "export")
    target = Path(args.to or DEFAULT_FILES[args.format])
    target = target if target.is_absolute() else course.root / target
    grades = grade_rows.load(course.db_url)
    if args.format == "parts":
        parts_csv.write(grades, target)
    elif args.format == "canvas":
        canvas_grades.write(grades, config, target)
        _listed("student(s) without a Canvas user id (lms_user_id): Canvas finds them by SIS id or name only",
                canvas_grades.unmatched_by_id(grades))
    else:
        left_out = moodle_grades.write(grades, config, target)
        key = moodle_grades.KEY_COLUMNS[config.moodle_key].lower()
        _listed(f"student(s) left out of the Moodle file, no {key} in nbgrader's student record", left_out)
    print(f"grades ({args.format}): {target}")
    report = staleness.report_manual_scores(course)
    if report:
        print(f"\n{report}", file=sys.stderr)


def pack_feedback(course: Course, args: argparse.Namespace) -> None:
    students = grade_rows.load(course.db_url).students
    submitted = [s for s in students if s.submitted]
    if args.pack == "moodle":
        if not args.moodle_archive:
            raise CourseError(NEEDS_ARCHIVE)
        pack = feedback_pack.pack_moodle(course, submitted, Path(args.moodle_archive))
    else:
        pack = feedback_pack.pack_canvas(course, submitted)
    _listed("student(s) left out of the pack", pack.left_out)
    print(f"feedback pack ({args.pack}, {len(pack.packed)} students): {pack.path}")


def add_options(export: argparse.ArgumentParser, feedback: argparse.ArgumentParser,
                require_current: Callable[[Course, str], None]) -> None:
    """Add --format to `export` and --pack to `feedback`; without them both commands run as before."""
    plain_export: Run = export.get_default("run")
    plain_feedback: Run = feedback.get_default("run")
    export.add_argument(
        "--format", choices=FORMATS, default="nbgrader",
        help="nbgrader: nbgrader's CSV (grades.csv); canvas: Canvas gradebook import (grades_canvas.csv); moodle: "
        "Moodle grade import (grades_moodle.csv); parts: points per part (grades_parts.csv). docs/lms.md",
    )
    export.set_defaults(to=None)

    def run_export(course: Course, args: argparse.Namespace) -> None:
        if args.format == "nbgrader":
            args.to = args.to or "grades.csv"
            plain_export(course, args)
        else:
            export_lms(course, args, require_current)

    export.set_defaults(run=run_export)
    feedback.add_argument("--pack", choices=("canvas", "moodle"),
                          help="also zip each student's feedback for upload to the LMS, in feedback_packs/")
    feedback.add_argument("--moodle-archive", metavar="ZIP",
                          help="Moodle's \"Download all submissions\" zip: its folder names give the participant ids")

    def run_feedback(course: Course, args: argparse.Namespace) -> None:
        if args.pack == "moodle" and not args.moodle_archive:  # said before the feedback is rebuilt
            raise CourseError(NEEDS_ARCHIVE)
        plain_feedback(course, args)  # refuses stale grades, writes every student's HTML
        if args.pack:
            pack_feedback(course, args)

    feedback.set_defaults(run=run_feedback)
