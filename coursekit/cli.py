"""`coursekit`: the instructor's steps, each a real nbgrader command run with the kit's config.

    source/ --release--> release/ --(students)--> submitted/ --grade--> autograded/ + gradebook.db
            --feedback--> feedback/<student>/...html      --export--> grades.csv
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import ASSIGNMENT, cohort, completion, intake, sandbox, scores, workers
from .course import Course, CourseError


def release(course: Course, args: argparse.Namespace) -> None:
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force")
    print(f"released: {course.release_notebook.relative_to(course.root)}")


def grade(course: Course, args: argparse.Namespace) -> None:
    if not any(course.submitted.glob(f"*/{ASSIGNMENT}/*.ipynb")):  # README.md alone is not a submission
        raise CourseError(
            f"nothing to grade: put submissions in submitted/<student>/{ASSIGNMENT}/ "
            "(or run `make demo`, which copies the demo cohort there)"
        )
    if args.cold:
        print("sandbox: none (--cold runs plain nbgrader kernels with your permissions: trusted notebooks only)")
    if args.allow_unsandboxed:
        os.environ[sandbox.ALLOW_ENV] = "1"  # read by the warm parent and its kernels
    to_grade = [args.student] if args.student else workers.pending(course, args.force)
    for rejection in intake.screen(course, to_grade):
        print(f"{rejection.student_id}: graded as blank (0 points): {rejection.reason}", file=sys.stderr)
    if not args.force and not args.student:  # pending() left out the completely graded ones
        for student in completion.clear_partial(course, to_grade):
            print(f"{student}: graded only in part before (the grader was stopped); grading again", file=sys.stderr)
    if args.workers > 1 and not args.cold and not args.student and len(workers.pending(course, args.force)) > 1:
        workers.grade_in_parallel(course, args.workers, args.force)
        return
    extra = ["--force"] if args.force or args.student else []  # --student ID regrades that student
    if args.student:
        extra += ["--student", args.student]
    course.nbgrader("autograde", ASSIGNMENT, *extra, warm=not args.cold)


def feedback(course: Course, args: argparse.Namespace) -> None:
    course.nbgrader("generate_feedback", ASSIGNMENT, "--force")
    print(f"feedback: {course.feedback.relative_to(course.root)}/<student>/{ASSIGNMENT}/{ASSIGNMENT}.html")


def export(course: Course, args: argparse.Namespace) -> None:
    course.nbgrader("export", "--to", args.to)
    print(f"grades: {args.to}")


def show_scores(course: Course, args: argparse.Namespace) -> None:
    cells = scores.cell_scores(course.db_url)
    print(scores.table(cells, scores.max_cell_points(course.db_url), sorted(cells)))


def demo(course: Course, args: argparse.Namespace) -> None:
    """The instructor's whole job, on the demo cohort shipped in demo/cohort/."""
    students = [student.student_id for student in cohort.STUDENTS]
    for student in students:
        course.submit(student, course.demo_notebook(student))
    print(f"copied {len(students)} demo submissions into submitted/")
    release(course, args)
    args.force, args.student, args.cold, args.workers = True, None, False, os.cpu_count() or 1
    args.allow_unsandboxed = False
    grade(course, args)
    feedback(course, args)
    export(course, args)
    cells = scores.cell_scores(course.db_url)
    maxima = scores.max_cell_points(course.db_url)
    print()
    print(scores.table(cells, maxima, students))
    expected = cohort.expected_scores(maxima)
    off = [student for student in students if cells.get(student) != expected[student]]
    if off:
        raise CourseError(f"demo scores differ from demo/cohort's expectations for: {', '.join(off)}")
    print(f"\nall {len(students)} demo submissions scored exactly as expected")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coursekit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("release", help="generate release/ from source/ (nbgrader generate_assignment)").set_defaults(
        run=release
    )
    grading = commands.add_parser("grade", help="autograde submitted/ into autograded/ and the gradebook")
    grading.add_argument("--force", action="store_true", help="regrade submissions that are already autograded")
    grading.add_argument("--student", metavar="ID", help="grade this student only")
    grading.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, metavar="N",
        help="grade on N processes, one gradebook writer (default: one per core, %(default)s here)",
    )
    grading.add_argument(
        "--cold", action="store_true",
        help="start a fresh kernel per submission, as plain nbgrader does (default: kernels forked from a "
        "parent that imported TensorFlow once)",
    )
    grading.add_argument(
        "--allow-unsandboxed", action="store_true",
        help="grade even where a sandbox protection is missing (the missing ones are printed; docs/security.md)",
    )
    grading.set_defaults(run=grade)
    commands.add_parser("feedback", help="write HTML feedback per student into feedback/").set_defaults(
        run=feedback
    )
    exporting = commands.add_parser("export", help="export grades to CSV for an LMS (nbgrader export)")
    exporting.add_argument("--to", default="grades.csv", metavar="FILE", help="where to write (default grades.csv)")
    exporting.set_defaults(run=export)
    commands.add_parser("scores", help="print each student's points per group from the gradebook").set_defaults(
        run=show_scores
    )
    demoing = commands.add_parser("demo", help="release, grade, feedback and export the shipped demo cohort")
    demoing.add_argument("--to", default="grades.csv", help=argparse.SUPPRESS)
    demoing.set_defaults(run=demo)
    return parser


def main(argv: Sequence[str] | None = None, course: Course | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(course or Course.here(), args)
    except CourseError as exc:
        print(f"coursekit {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
