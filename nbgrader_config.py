"""nbgrader settings for the Custom Training Basics course kit (read by every `nbgrader` command)."""

import os
from pathlib import Path

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    ClearHiddenTests,
    ClearOutput,
    DeduplicateIds,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)

import coursekit.course.nbgrader_fixes  # noqa: F401 - nbgrader's add_submission without SQLAlchemy 2's warnings
from coursekit import COURSE_ID
from coursekit.course.directory import DB_URL_ENV
from coursekit.course.late import LatePenalty
from coursekit.course.staleness import StampGradedWith
from coursekit.engine.routes import RefusingExporter, SandboxedKernelManager, autograde_route
from coursekit.exports.csv_export import SafeCsvExportPlugin
from coursekit.exports.exchange import CourseReleaseFeedback
from coursekit.steps.feedback_page import TEMPLATE_BASEDIRS, FeedbackPage
from coursekit.steps.judge import JudgeObservations, ObservedExecute
from coursekit.steps.metadata_check import CheckCellMetadataCached
from coursekit.steps.preprocessors import ReplayExecution, SanitizeTestOutputs
from coursekit.steps.restore_cells import RestoreAssignmentCells
from coursekit.steps.sanitize import ACTIVE_FILE_PATTERNS, SanitizeStudentContent
from coursekit.steps.trim_tracebacks import TrimTracebacks

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.CourseDirectory.root = str(Path(__file__).resolve().parent)
c.CourseDirectory.course_id = COURSE_ID

# ---- nbgrader's exchange (release_assignment, collect, release_feedback, `nbgrader list`, formgrader's "Release
# feedback"): set its folder here and nowhere else (README, "Start your course"). The default, exchange/ in the
# course folder (git-ignored, made here when missing), serves an instructor and students who share this
# machine's account or folder. For students on other accounts (a JupyterHub), use a folder every one of them
# can reach, made once by root as nbgrader asks: `mkdir -p /srv/nbgrader/exchange && chmod 777 /srv/nbgrader/exchange`.
c.Exchange.root = str(Path(__file__).resolve().parent / "exchange")  # or e.g. "/srv/nbgrader/exchange"
if Path(c.Exchange.root) == Path(__file__).resolve().parent / "exchange":  # a shared one must exist already
    Path(c.Exchange.root).mkdir(exist_ok=True)
# Feedback of students who did not submit through the exchange is listed, not released (coursekit/exports/exchange.py).
c.ExchangeFactory.release_feedback = CourseReleaseFeedback
# ----

# The gradebook: COURSEKIT_DB_URL (coursekit sets it for every nbgrader it runs: docs/gradebook.md) if set,
# else nbgrader's default, SQLite in gradebook.db here.
if os.environ.get(DB_URL_ENV):
    c.CourseDirectory.db_url = os.environ[DB_URL_ENV]

# ---- The due date, the late penalty and the grading policy: set them here and nowhere else
# (coursekit/course/late.py, coursekit/steps/policy.py; README, "Due date and late penalty" and "Grading policy").
# `make release` and `make grade` copy the due date into the gradebook; a change of any of them makes
# `make grade` regrade the submissions. A submission's time: submitted/<student>/<assignment>/timestamp.txt,
# as nbgrader's collect and zip_collect write it.
c.Deadline.due_date = ""  # e.g. "2026-12-15 23:59:00 Europe/Berlin"; "" for no due date
c.AssignLatePenalties.plugin_class = LatePenalty
c.LatePenalty.percent_per_day = 0  # % of the score taken off per day late, a started day counting whole; 0: none
# The grading policy for convergence and plots (6 of 19 points; docs/grading.md, "Grading policy"):
# "each_mistake_once": a part that fails its own checks is replaced by the reference in the convergence run and
#   the figures that show it are not graded, so each mistake costs only its own part's points;
# "whole_notebook": convergence and plots are judged on the student's own run and figures.
# Under both, a notebook none of whose parts (Model, loss, train) passes its own checks earns none of these points.
# A change makes `make grade` regrade the submissions.
c.GradingPolicy.integration = "each_mistake_once"
# ----

# ---- Grades and feedback out to the LMS: set them here and nowhere else (coursekit/lms/out_settings.py; docs/lms.md,
# "Grades and feedback out"). `coursekit export --format canvas|moodle|parts`, `coursekit feedback --pack ...`.
c.LmsExport.title = "Custom Training Basics"  # the assignment's title in the LMS
c.LmsExport.canvas_assignment_id = ""  # the number at the end of the Canvas assignment's URL; needed for Canvas
c.LmsExport.canvas_sis_user_id = ""  # "", "student_id" or "email": the nbgrader field written as SIS User ID
c.LmsExport.canvas_sis_login_id = ""  # "", "student_id" or "email": the nbgrader field written as SIS Login ID
c.LmsExport.moodle_key = "email"  # Moodle finds students by "email" or "idnumber" (= nbgrader's student id)
# ----

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# A cell may train for a while, never forever (tests set a few seconds). A timeout or a dead kernel costs
# that cell and the ones after it only (coursekit/kernels/runaway.py, under ObservedExecute): docs/security.md.
c.Execute.timeout = int(os.environ.get("COURSEKIT_CELL_TIMEOUT", "120"))
# Every output has arrived when the last cell is done: end the kernel at once rather than asking it to.
c.Execute.shutdown_kernel = "immediate"
# The observer binds the helpers it relies on when it is imported: before any student code, in cold kernels
# too (warm kernels import it in the Zygote already). docs/security-judging.md.
c.Execute.extra_arguments = ["--IPKernelApp.exec_lines=import grader_observe.kernel"]

# Who runs this autograde (coursekit/engine/routes.py): the kit's sandboxed kernels ("warm"), its gradebook writer,
# which never executes ("replay"), plain kernels the instructor chose for trusted notebooks ("unsandboxed"),
# or nobody: plain `nbgrader autograde` and formgrader's Autograde button are refused, pointing to `make grade`.
route = autograde_route(os.environ)
if route is None:
    c.Autograde.exporter_class = RefusingExporter
elif route == "warm":  # and only kernels the warm parent forks, sandboxed
    c.Execute.kernel_manager_class = SandboxedKernelManager

# nbgrader's first (sanitizing) pass, with deleted or re-labelled assignment cells put back before
# OverwriteCells restores their source from the gradebook (coursekit/steps/restore_cells.py).
c.RestoreAssignmentCells.release_root = str(Path(__file__).resolve().parent / "release")
c.Autograde.sanitize_preprocessors = [
    ClearOutput,
    DeduplicateIds,
    OverwriteKernelspec,
    RestoreAssignmentCells,
    OverwriteCells,
    CheckCellMetadataCached,
]

# nbgrader's autograde steps: execution observes (coursekit/steps/judge.py), then the judge decides each test cell
# in this process, then the kit's SanitizeTestOutputs.
c.Autograde.autograde_preprocessors = [
    ReplayExecution if route == "replay" else ObservedExecute,
    JudgeObservations,
    SanitizeTestOutputs,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SanitizeStudentContent,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadataCached,
    StampGradedWith,  # last: what graded this notebook, so a later change of the assignment shows (staleness.py)
]
# A worker of `coursekit grade` (coursekit/engine/workers.py) executes and judges only: the one writer replays its
# outputs through every step above and records the grades, so scoring here would be thrown away.
if os.environ.get("COURSEKIT_EXECUTE_ONLY") and route != "replay":
    c.Autograde.autograde_preprocessors = [ObservedExecute, JudgeObservations, SanitizeTestOutputs, LimitOutput]

# Feedback shows each check's message, never the hidden tests' source; a student's own crash as their frames and
# the error, without the grading machine's paths (coursekit/steps/trim_tracebacks.py); each check named and
# marked passed, partly or failed, MathJax inlined, figures described (coursekit/steps/feedback_page.py), in the
# kit's template (coursekit/templates/feedback/, found before nbgrader's own). docs/grading.md, "The feedback page".
c.GenerateFeedback.preprocessors = [ClearHiddenTests, GetGrades, TrimTracebacks, FeedbackPage,
                                    CSSHTMLHeaderPreprocessor]
c.HTMLExporter.extra_template_basedirs = TEMPLATE_BASEDIRS

# grades.csv: quoted, and ids or names that a spreadsheet would run as formulas neutralised
# (coursekit/exports/csv_export.py).
c.ExportApp.plugin_class = SafeCsvExportPlugin
# Student HTML, JavaScript and markdown are neutralised in the autograded notebook, and again whenever a notebook
# becomes a page: formgrader's view (on the instructor's origin) and the feedback both use HTMLExporter. Files a
# browser would run as a page are never copied from a submission to autograded/ or feedback/.
# coursekit/steps/sanitize.py, docs/security.md.
c.HTMLExporter.preprocessors = [SanitizeStudentContent]
c.SanitizeStudentContent.release_root = str(Path(__file__).resolve().parent / "release")
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", *ACTIVE_FILE_PATTERNS]
