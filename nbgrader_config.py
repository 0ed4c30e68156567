"""nbgrader settings for the Custom Training Basics course kit (read by every `nbgrader` command)."""

import os
from pathlib import Path

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearHiddenTests,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
)

from coursekit.preprocessors import ReplayExecution, SanitizeTestOutputs
from coursekit.runaway import GuardedExecute

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.CourseDirectory.root = str(Path(__file__).resolve().parent)
c.CourseDirectory.course_id = "custom-training"

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# A cell may train for a while, never forever (tests set a few seconds). GuardedExecute: docs/security.md.
c.Execute.timeout = int(os.environ.get("COURSEKIT_CELL_TIMEOUT", "120"))

# Set by `coursekit grade` when workers have executed the notebooks already (coursekit/workers.py).
replay_from = os.environ.get("COURSEKIT_REPLAY_DIR")
c.ReplayExecution.executed_root = replay_from or ""

# nbgrader's autograde steps, with the kit's SanitizeTestOutputs right after execution.
c.Autograde.autograde_preprocessors = [
    ReplayExecution if replay_from else GuardedExecute,
    SanitizeTestOutputs,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]

# Feedback shows each check's message, never the hidden tests' source.
c.GenerateFeedback.preprocessors = [ClearHiddenTests, GetGrades, CSSHTMLHeaderPreprocessor]
