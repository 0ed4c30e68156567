"""`coursekit`: the instructor's steps, each a real nbgrader command run with the kit's config.

    source/ --release--> release/ --(students)--> submitted/ --grade--> autograded/ + gradebook.db
            --feedback--> feedback/<student>/...html      --export--> grades.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence

from . import ASSIGNMENT, cohort, completion, grading, intake, sandbox, scores, workers
from .course import Course, CourseError


def release(course: Course, args: argparse.Namespace) -> None:
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force")
    print(f"released: {course.release_notebook.relative_to(course.root)}")


def grade(course: Course, args: argparse.Namespace) -> None:
    found = intake.find(course)
    if not found.students and not found.refused:  # README.md alone is not a submission
        raise CourseError(
            f"nothing to grade: put submissions in submitted/<student>/{ASSIGNMENT}/ "
            "(or run `make demo`, which copies the demo cohort there)"
        )
    if args.cold:
        print("sandbox: none (--cold runs plain nbgrader kernels with your permissions: trusted notebooks only)")
    if args.allow_unsandboxed:
        os.environ[sandbox.ALLOW_ENV] = "1"  # read by the warm parent and its kernels
    if not args.cold:
        grading.grade_course(course, args.force, args.workers, scheduler=args.scheduler, chunk=args.chunk,
                             student=args.student)
        return
    # Plain nbgrader, one process, on what intake staged (never submitted/ itself).
    students = [grading.checked_student(found, args.student)] if args.student else \
        workers.pending(course, args.force, found.students)
    for refused, why in found.refused.items():
        print(f"{intake.shown(refused)}: not graded, refused id: {why}", file=sys.stderr)
    if not args.force and not args.student:  # pending() left out the completely graded ones
        for student in completion.clear_partial(course, students):
            print(f"{intake.shown(student)}: graded only in part before (the grader was stopped); grading again",
                  file=sys.stderr)
    taken = intake.screen(course, students)
    for rejection in taken.rejected:
        print(f"{intake.shown(rejection.student_id)}: graded as blank (0 points): {intake.shown(rejection.reason)}",
              file=sys.stderr)
    force = ["--force"] if args.force or args.student else []
    # nbgrader globs intake/*/: a glob skips names that start with a dot, so those are named one by one.
    if any(not s.startswith(".") for s in students) and not args.student:
        course.nbgrader("autograde", ASSIGNMENT, intake.NBGRADER_OPTION, *force, unsandboxed=True)
    for student in [s for s in students if s.startswith(".") or args.student]:
        course.nbgrader("autograde", ASSIGNMENT, intake.NBGRADER_OPTION, *force,
                        f"--CourseDirectory.student_id={student}", unsandboxed=True)
    if found.refused and not args.student:
        raise CourseError(f"{len(found.refused)} submissions have an id intake refuses (listed above): rename their "
                          "folders in submitted/ (docs/security.md, Intake)")


def feedback(course: Course, args: argparse.Namespace) -> None:
    course.nbgrader("generate_feedback", ASSIGNMENT, "--force")
    # nbgrader globs autograded/*/: ids that start with a dot are named one by one.
    entries = list(os.scandir(course.autograded)) if course.autograded.is_dir() else []
    hidden = [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)
              and entry.name.startswith(".") and not intake.id_problem(entry.name)]
    for student in sorted(hidden):
        course.nbgrader("generate_feedback", ASSIGNMENT, "--force", f"--CourseDirectory.student_id={student}")
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
    args.scheduler, args.chunk = None, None
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
    grading.add_argument("--student", metavar="ID", help="grade (or regrade) this student only")
    grading.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, metavar="N",
        help="grade on N processes, one gradebook writer (default: one per core, %(default)s here)",
    )
    grading.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="execute on a Dask distributed cluster, e.g. tcp://host:8786 (the gradebook is still written here, "
        "by one process)",
    )
    grading.add_argument(
        "--chunk", type=int, metavar="N", help="submissions per task (default: enough tasks to keep workers busy)"
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
    for command in commands.choices.values():
        command.add_argument(
            "--db-url", metavar="URL",
            help="the gradebook, as an SQLAlchemy URL such as postgresql://user@host/db (default: $COURSEKIT_DB_URL, "
            "else SQLite in gradebook.db in the course folder; docs/gradebook.md)",
        )
    return parser


def main(argv: Sequence[str] | None = None, course: Course | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if course is None:
            course = Course.here(args.db_url)
        elif args.db_url:
            course = dataclasses.replace(course, gradebook_url=args.db_url)
        args.run(course, args)
    except grading.GradingInterrupted as exc:
        print(f"coursekit {args.command}: {exc}", file=sys.stderr)
        return 130  # the shell's code for "stopped by Ctrl-C"
    except CourseError as exc:
        print(f"coursekit {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
