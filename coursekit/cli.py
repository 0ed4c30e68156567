"""`coursekit`: the instructor's steps, each a real nbgrader command run with the kit's config.

    source/ --release--> release/ --(students)--> submitted/ --grade--> autograded/ + gradebook.db
            --feedback--> feedback/<student>/...html      --export--> grades.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from coursekit import ASSIGNMENT
from coursekit.course import cohort, late, staleness
from coursekit.course.directory import Course, CourseError
from coursekit.engine import completion, grading, intake, workers
from coursekit.exports import scores
from coursekit.kernels import sandbox


def release(course: Course, args: argparse.Namespace) -> None:
    # The kit moves its own generated folder aside rather than passing --force, for which nbgrader warns; it
    # comes back if nbgrader refuses (a cell added or removed once submissions are in the gradebook).
    released = course.release_notebook.parent
    with tempfile.TemporaryDirectory(prefix="coursekit-release-") as scratch:
        previous = Path(scratch) / released.name
        if released.exists():
            shutil.move(released, previous)
        try:
            course.nbgrader("generate_assignment", ASSIGNMENT)
        except CourseError as exc:
            shutil.rmtree(released, ignore_errors=True)
            if previous.exists():
                shutil.move(previous, released)
            raise CourseError(f"{exc} release/ is as it was. To add or remove a test cell once students' "
                              "grades are recorded, see docs/grading.md, \"Changing the assignment\".") from None
    print(late.sync_due_date(course)[0])
    print(f"released: {course.release_notebook.relative_to(course.root)}")


def grade(course: Course, args: argparse.Namespace) -> None:
    found = intake.find(course)
    if not found.students and not found.refused:  # README.md alone is not a submission
        raise CourseError(
            f"nothing to grade: put submissions in submitted/<student>/{ASSIGNMENT}/ "
            "(`make demo` grades the demo cohort in a scratch course of its own, demo-course/)"
        )
    if args.cold:
        print("sandbox: none (--cold runs plain nbgrader kernels with your permissions: trusted notebooks only)")
    if args.allow_unsandboxed:
        os.environ[sandbox.ALLOW_ENV] = "1"  # read by the warm parent and its kernels
    if args.student:  # a refused or unknown id is said before anything else runs
        grading.checked_student(found, args.student)
    due, due_changed = late.sync_due_date(course)  # before pending(): a new due date makes grades stale
    if due_changed:
        print(due)
    if not args.force and not args.student:
        changed = staleness.stale(course, found.students)
        if changed:
            print(f"{len(changed)} submission(s) were graded before the assignment changed (points, cells or "
                  f"checks): regrading {', '.join(intake.shown(s) for s in sorted(changed))}", file=sys.stderr)
    if args.cold:
        _grade_cold(course, args, found)
    else:
        grading.grade_course(course, args.force, args.workers, scheduler=args.scheduler, chunk=args.chunk,
                             student=args.student)
    _report_manual_scores(course)
    if args.student:  # last, so the run ends with what the instructor asked about
        cells = scores.cell_scores(course.db_url)
        table = scores.table(cells, scores.max_cell_points(course.db_url), [args.student],
                             scores.late_penalties(course.db_url))
        print(f"\n{table}", flush=True)


def _grade_cold(course: Course, args: argparse.Namespace, found: intake.Found) -> None:
    """Plain nbgrader, one process, unsandboxed (trusted notebooks), on what intake staged (never submitted/)."""
    students = [grading.checked_student(found, args.student)] if args.student else \
        workers.pending(course, args.force, found.students)
    for refused, why in found.refused.items():
        print(f"{intake.shown(refused)}: not graded, refused id: {why}", file=sys.stderr)
    if not args.force and not args.student:  # pending() left out the completely graded ones
        for student in completion.clear_partial(course, students):
            print(f"{intake.shown(student)}: {completion.why_again(course, student)}", file=sys.stderr)
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


def _report_manual_scores(course: Course) -> None:
    report = staleness.report_manual_scores(course)
    if report:
        print(f"\n{report}", file=sys.stderr)


def require_current_grades(course: Course, what: str) -> None:
    """Refuse to hand out grades that are stale or missing: the message says what to run."""
    # Listed, never globbed: a glob skips ids that start with a dot (coursekit/engine/intake.py).
    found = intake.find(course).students
    graded = [e.name for e in os.scandir(course.autograded) if e.is_dir(follow_symlinks=False)] \
        if course.autograded.is_dir() else []
    students = sorted(set(found) | set(graded))
    changed = staleness.stale(course, students)
    ungraded = [s for s in workers.pending(course, False, found) if s not in changed]
    problems = []
    if changed:
        problems.append(f"{len(changed)} graded before the assignment last changed (points, cells or checks): "
                        f"{_some(sorted(changed))}")
    if ungraded:
        problems.append(f"{len(ungraded)} not (completely) graded: {_some(ungraded)}")
    if problems:
        raise CourseError(f"no {what}: " + "; ".join(problems)
                          + f". Run `make grade` (it grades exactly these), then `make {what}` again.")


def _some(students: list[str], shown: int = 8) -> str:
    more = f" and {len(students) - shown} more" if len(students) > shown else ""
    return ", ".join(intake.shown(s) for s in students[:shown]) + more


def feedback(course: Course, args: argparse.Namespace) -> None:
    if getattr(args, "student", None):
        _feedback_for(course, args.student)
        return
    require_current_grades(course, "feedback")
    course.nbgrader("generate_feedback", ASSIGNMENT, "--force")
    # nbgrader globs autograded/*/: ids that start with a dot are named one by one.
    entries = list(os.scandir(course.autograded)) if course.autograded.is_dir() else []
    hidden = [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)
              and entry.name.startswith(".") and not intake.id_problem(entry.name)]
    for student in sorted(hidden):
        course.nbgrader("generate_feedback", ASSIGNMENT, "--force", f"--CourseDirectory.student_id={student}")
    print(f"feedback: {course.feedback.relative_to(course.root)}/<student>/{ASSIGNMENT}/{ASSIGNMENT}.html")


# ---- `coursekit feedback --student ID` (make feedback STUDENT=id): one student's feedback only.
def _feedback_for(course: Course, student: str) -> None:
    problem = intake.id_problem(student)
    if problem:
        raise CourseError(f"refusing the student id {intake.shown(student)!r}: {problem} (docs/security.md, Intake)")
    graded = course.autograded / student / ASSIGNMENT
    if graded.is_symlink() or not graded.is_dir():
        known = sorted(e.name for e in os.scandir(course.autograded) if e.is_dir(follow_symlinks=False)
                       and not intake.id_problem(e.name)) if course.autograded.is_dir() else []
        hint = f"graded students: {_some(known)}" if known else "no student is graded yet"
        submitted = "" if not course.submitted_notebook(student).is_file() else \
            f"; they have a submission: `make grade STUDENT={student}` grades it first"
        raise CourseError(f"no graded submission for {intake.shown(student)!r} in autograded/ ({hint}){submitted}")
    if workers.pending(course, False, [student]):
        raise CourseError(f"no feedback: {intake.shown(student)} is not completely graded (the grader was stopped). "
                          f"Run `make grade STUDENT={student}`, then this again.")
    if staleness.stale(course, [student]):
        raise CourseError(f"no feedback: {intake.shown(student)} was graded before the assignment last changed "
                          f"(points, cells or checks). Run `make grade STUDENT={student}`, then this again.")
    # nbgrader globs the id: intake.id_problem refuses the glob characters, so this names exactly one folder.
    course.nbgrader("generate_feedback", ASSIGNMENT, "--force", f"--CourseDirectory.student_id={student}")
    page = course.feedback / student / ASSIGNMENT / f"{ASSIGNMENT}.html"
    if not page.is_file():
        raise CourseError(f"nbgrader wrote no feedback for {intake.shown(student)!r}")
    print(f"feedback: {page.relative_to(course.root)}")
# ----


def export(course: Course, args: argparse.Namespace) -> None:
    require_current_grades(course, "export")
    course.nbgrader("export", "--to", args.to)
    print(f"grades: {args.to}")
    _report_manual_scores(course)


def show_scores(course: Course, args: argparse.Namespace) -> None:
    cells = scores.cell_scores(course.db_url)
    penalties = scores.late_penalties(course.db_url)
    print(scores.table(cells, scores.max_cell_points(course.db_url), sorted(cells), penalties))
    changed = staleness.stale(course, sorted(cells))
    if changed:
        print(f"\nstale (graded before the assignment last changed; `make grade` regrades them): "
              f"{_some(sorted(changed))}", file=sys.stderr)
    _report_manual_scores(course)


def report(course: Course, args: argparse.Namespace) -> None:
    from coursekit.report import collect, page  # matplotlib and the template: only when a report is asked for

    built = page.build(collect.collect(course), Path(args.out) if args.out else course.root / "reports")
    print(f"report: {built.html}")
    print(f"data:   {', '.join(path.name for path in built.csv)} (beside it)")


DEMO_COURSE = "demo-course"
# Written into the demo course, so `make demo` only ever deletes a folder it made itself.
DEMO_MARK = ".coursekit-demo-course"


def demo_course(course: Course) -> Course:
    """A fresh scratch course in `demo-course/`: the course's source, release and config, nothing graded.

    It has its own SQLite gradebook whatever COURSEKIT_DB_URL says, so the demo never writes the course's
    submitted/, gradebook or exports.
    """
    target = course.root / DEMO_COURSE
    if target.is_symlink() or (target.exists() and not (target / DEMO_MARK).is_file()):
        raise CourseError(f"{target} exists and was not made by `make demo`: move it away, the demo runs there")
    if target.exists():
        shutil.rmtree(target)
    scratch = dataclasses.replace(course.scratch_copy(target), verbose=course.verbose)
    (target / DEMO_MARK).write_text("made by `make demo`, deleted and rebuilt by the next one and by `make clean`\n")
    return scratch


def run_demo(course: Course, extra: dict[str, Path] | None = None) -> Course:
    """Release, grade, feedback and export the demo cohort (plus `extra` {student: notebook}) in a demo course."""
    scratch = demo_course(course)
    where = scratch.root.relative_to(course.root) if scratch.root.is_relative_to(course.root) else scratch.root
    students = [student.student_id for student in cohort.STUDENTS]
    for student in students:
        scratch.submit(student, scratch.demo_notebook(student))
    for student, notebook in (extra or {}).items():
        scratch.submit(student, notebook)
    print(f"demo course: {where}/ (a scratch course of its own: your submitted/, gradebook and grades.csv are "
          "not touched)")
    print(f"copied {len(students)} demo submissions into {where}/submitted/")
    args = argparse.Namespace(
        force=True, student=None, cold=False, workers=os.cpu_count() or 1, scheduler=None, chunk=None,
        allow_unsandboxed=False, to="grades.csv",
    )
    release(scratch, args)
    grade(scratch, args)
    feedback(scratch, args)
    export(scratch, args)
    cells = scores.cell_scores(scratch.db_url)
    maxima = scores.max_cell_points(scratch.db_url)
    print()
    print(scores.table(cells, maxima, [*students, *(extra or {})]))
    expected = cohort.expected_scores(maxima)
    off = [student for student in students if cells.get(student) != expected[student]]
    if off:
        raise CourseError(f"demo scores differ from demo/cohort's expectations for: {', '.join(off)}")
    print(f"\nall {len(students)} demo submissions scored exactly as expected")
    print(f"feedback: {where}/feedback/<student>/{ASSIGNMENT}/{ASSIGNMENT}.html")
    print(f"grades:   {where}/grades.csv, gradebook {where}/gradebook.db (`cd {where}` to run nbgrader or "
          "formgrader on it)")
    return scratch


def demo(course: Course, args: argparse.Namespace) -> None:
    """The instructor's whole job, on the demo cohort shipped in demo/cohort/, in demo-course/."""
    run_demo(course)


# ---- lms-in: `coursekit roster` and `coursekit collect` (coursekit/lms/roster.py, archives.py; docs/lms.md)


def import_roster(course: Course, args: argparse.Namespace) -> None:
    from coursekit.lms import roster as lms_roster

    imported = lms_roster.run(course, Path(args.file), args.lms)
    for line in imported.skipped:
        print(f"not a student, skipped: {line}", file=sys.stderr)
    for line in imported.refused:
        print(f"refused: {line}", file=sys.stderr)
    print(f"roster ({imported.lms}): {len(imported.students)} students added or updated in the gradebook"
          + (f", {len(imported.refused)} rows refused (listed above)" if imported.refused else ""))
    if not imported.students:
        raise CourseError("no student imported")


def collect_submissions(course: Course, args: argparse.Namespace) -> None:
    from coursekit.lms import archives

    if args.worksheet and args.lms != "moodle":
        raise CourseError("--worksheet is Moodle's grading worksheet: use it with --lms moodle")
    collected = archives.collect(course, Path(args.archive), args.lms, force=args.force,
                                 worksheet=Path(args.worksheet) if args.worksheet else None, timezone=args.timezone)
    for line in collected.report:
        print(line, file=sys.stderr)
    print(f"collected {len(collected.written)} submissions into submitted/<student>/{ASSIGNMENT}/"
          + (f"; {len(collected.report)} lines above say what was left out and why" if collected.report else ""))


# ---- end lms-in


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
    feedbacking = commands.add_parser("feedback", help="write HTML feedback per student into feedback/")
    feedbacking.add_argument("--student", metavar="ID", help="this student's feedback only")
    feedbacking.set_defaults(run=feedback)
    exporting = commands.add_parser("export", help="export grades to CSV for an LMS (nbgrader export)")
    exporting.add_argument("--to", default="grades.csv", metavar="FILE", help="where to write (default grades.csv)")
    exporting.set_defaults(run=export)
    commands.add_parser("scores", help="print each student's points per group from the gradebook").set_defaults(
        run=show_scores
    )
    reporting = commands.add_parser(
        "report", help="how the class did: one self-contained HTML page and its data as CSV, in reports/")
    reporting.add_argument("--out", metavar="DIR", help="where to write them (default: reports/ in the course folder)")
    reporting.set_defaults(run=report)
    demoing = commands.add_parser("demo", help="release, grade, feedback and export the shipped demo cohort")
    demoing.set_defaults(run=demo)
    # ---- lms-in: roster and submissions in (docs/lms.md)
    rostering = commands.add_parser("roster", help="import a Canvas or Moodle roster export into nbgrader's students")
    rostering.add_argument("file", metavar="FILE", help="Canvas gradebook export or Moodle participants export (CSV)")
    rostering.add_argument("--lms", choices=("canvas", "moodle"), help="which export (default: told by its header)")
    rostering.set_defaults(run=import_roster)
    collecting = commands.add_parser("collect", help="unpack an LMS \"download all submissions\" zip into submitted/")
    collecting.add_argument("archive", metavar="ARCHIVE", help="the zip Canvas or Moodle gave you")
    collecting.add_argument("--lms", choices=("canvas", "moodle"), required=True, help="which LMS made it")
    collecting.add_argument("--force", action="store_true", help="replace submissions already in submitted/")
    collecting.add_argument("--worksheet", metavar="CSV",
                            help="Moodle's grading worksheet: participant ids and submission times")
    collecting.add_argument("--timezone", default="UTC", metavar="ZONE",
                            help="the timezone of the worksheet's times (your Moodle profile's; default %(default)s)")
    collecting.set_defaults(run=collect_submissions)
    # ---- end lms-in
    # ---- lms-out: export --format canvas/moodle/parts, feedback --pack canvas/moodle (coursekit/lms/out_commands.py)
    from coursekit.lms import out_commands as lms_out

    lms_out.add_options(commands.choices["export"], commands.choices["feedback"], require_current_grades)
    # ----
    for command in commands.choices.values():
        command.add_argument("--verbose", action="store_true", help="show nbgrader's INFO lines")
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
        if args.verbose:
            course = dataclasses.replace(course, verbose=True)
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
