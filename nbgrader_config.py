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

import coursekit.nbgrader_fixes  # noqa: F401 - nbgrader's add_submission without SQLAlchemy 2's warnings
from coursekit import COURSE_ID
from coursekit.course import DB_URL_ENV
from coursekit.judge import JudgeObservations, ObservedExecute
from coursekit.late import LatePenalty
from coursekit.metadata_check import CheckCellMetadataCached
from coursekit.preprocessors import ReplayExecution, SanitizeTestOutputs
from coursekit.restore_cells import RestoreAssignmentCells
from coursekit.staleness import StampGradedWith

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.CourseDirectory.root = str(Path(__file__).resolve().parent)
c.CourseDirectory.course_id = COURSE_ID

# The gradebook: COURSEKIT_DB_URL (coursekit sets it for every nbgrader it runs: docs/gradebook.md) if set,
# else nbgrader's default, SQLite in gradebook.db here.
if os.environ.get(DB_URL_ENV):
    c.CourseDirectory.db_url = os.environ[DB_URL_ENV]

# ---- The due date and the late penalty: set them here and nowhere else (coursekit/late.py; README, "Due date
# and late penalty"). `make release` and `make grade` copy the due date into the gradebook; a change of
# either makes `make grade` regrade the submissions. A submission's time: submitted/<student>/<assignment>/
# timestamp.txt, as nbgrader's collect and zip_collect write it.
c.Deadline.due_date = ""  # e.g. "2026-12-15 23:59:00 Europe/Berlin"; "" for no due date
c.AssignLatePenalties.plugin_class = LatePenalty
c.LatePenalty.percent_per_day = 0  # % of the score taken off per day late, a started day counting whole; 0: none
# ----

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# A cell may train for a while, never forever (tests set a few seconds). A timeout or a dead kernel costs
# that cell and the ones after it only (coursekit/runaway.py, under ObservedExecute): docs/security.md.
c.Execute.timeout = int(os.environ.get("COURSEKIT_CELL_TIMEOUT", "120"))
# Every output has arrived when the last cell is done: end the kernel at once rather than asking it to.
c.Execute.shutdown_kernel = "immediate"
# The observer binds the helpers it relies on when it is imported: before any student code, in cold kernels
# too (warm kernels import it in the Zygote already). docs/security-judging.md.
c.Execute.extra_arguments = ["--IPKernelApp.exec_lines=import grader_observe.kernel"]

# Set by `coursekit grade` when workers have executed the notebooks already (coursekit/workers.py).
replay_from = os.environ.get("COURSEKIT_REPLAY_DIR")
c.ReplayExecution.executed_root = replay_from or ""

# nbgrader's first (sanitizing) pass, with deleted or re-labelled assignment cells put back before
# OverwriteCells restores their source from the gradebook (coursekit/restore_cells.py).
c.RestoreAssignmentCells.release_root = str(Path(__file__).resolve().parent / "release")
c.Autograde.sanitize_preprocessors = [
    ClearOutput,
    DeduplicateIds,
    OverwriteKernelspec,
    RestoreAssignmentCells,
    OverwriteCells,
    CheckCellMetadataCached,
]

# nbgrader's autograde steps: execution observes (coursekit/judge.py), then the judge decides each test cell
# in this process, then the kit's SanitizeTestOutputs.
c.Autograde.autograde_preprocessors = [
    ReplayExecution if replay_from else ObservedExecute,
    JudgeObservations,
    SanitizeTestOutputs,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadataCached,
    StampGradedWith,  # last: what graded this notebook, so a later change of the assignment shows (staleness.py)
]
# A worker of `coursekit grade` (coursekit/workers.py) executes and judges only: the one writer replays its
# outputs through every step above and records the grades, so scoring here would be thrown away.
if os.environ.get("COURSEKIT_EXECUTE_ONLY"):
    c.Autograde.autograde_preprocessors = [ObservedExecute, JudgeObservations, SanitizeTestOutputs, LimitOutput]

# Feedback shows each check's message, never the hidden tests' source.
c.GenerateFeedback.preprocessors = [ClearHiddenTests, GetGrades, CSSHTMLHeaderPreprocessor]
