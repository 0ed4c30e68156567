"""Which route runs a submission's code in this course, and the guards that keep every route sandboxed.

Student code runs only in kernels the warm parent forked and confined (coursekit/kernels/warm_kernels.py). Every
`nbgrader autograde` in this course reads nbgrader_config.py, which asks `autograde_route` how it was
started:

- `warm`: by the kit, with a running warm parent (`coursekit grade`, its workers): sandboxed kernels;
- `replay`: the kit's one gradebook writer, which never executes: it records what a worker executed, and a
  submission without a matching execution fails, with its reason, and stays ungraded for the next run;
- `unsandboxed`: the instructor asked for plain kernels on trusted notebooks (`coursekit grade --cold`,
  `make bench`'s plain nbgrader run);
- none of these (plain `nbgrader autograde`, formgrader's Autograde button): refused before nbgrader reads
  a submission, starts a kernel or touches the gradebook, with a message that points to `make grade`.

nbgrader builds paths from student ids with `glob` and matches them with regular expressions, so an id like
`*` would grade every folder. The kit's own autograde processes use ids as literal folder names
(`LiteralAutograde`) and refuse ids that cannot be one (`id_problem`).
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbconvert.exporters import NotebookExporter
from nbgrader.converters import Autograde
from nbgrader.converters.base import NbGraderException

from coursekit.course.directory import UNSANDBOXED_ENV
from coursekit.kernels.warm_kernels import PROVISIONER, SOCKET_ENV, WarmKernelError, WarmProvisioner

REPLAY_ENV = "COURSEKIT_REPLAY_DIR"
# What the coordinator tells the writer about one submission, in nbconvert's resources (see ReplayAutograde).
REPLAY_KEY = "coursekit_replay"

REFUSAL = (
    "Refusing to autograde: in this course, student code runs only in the kit's sandboxed kernels. "
    "Plain `nbgrader autograde` and formgrader's Autograde button would run it in a plain kernel, with your "
    "permissions, in the course folder. Grade with `make grade` (all pending submissions; STUDENT=id for one "
    "student, FORCE=1 to regrade) or `.venv/bin/coursekit grade`, in the course folder: it records the grades "
    "in this same gradebook, so formgrader shows them. docs/security.md says why."
)


def autograde_route(env: Mapping[str, str]) -> str | None:
    """How this `nbgrader autograde` was started: "replay", "warm", "unsandboxed", or None (refuse)."""
    if env.get(REPLAY_ENV):
        return "replay"
    if env.get(SOCKET_ENV):
        return "warm"
    if env.get(UNSANDBOXED_ENV) == "1":
        return "unsandboxed"
    return None


class RefusingExporter(NotebookExporter):
    """Autograde's exporter when no sandboxed route started it: refuses when Autograde creates it.

    nbgrader creates the exporter after it has listed the submissions and before it converts any: nothing is
    written, no student or submission is added to the gradebook, no kernel starts (a check in a preprocessor
    would come after nbgrader had already removed an earlier grade's folder with --force).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log.error(REFUSAL)
        raise NbGraderException(REFUSAL)


class SandboxedKernelManager(AsyncKernelManager):
    """Execute's kernel manager on the warm route: a kernel the warm parent does not fork is never launched.

    The warm route means a running warm parent and a `python3` kernelspec that names its provisioner; a
    kernelspec resolved some other way (the route's variable set by hand, a notebook asking for another
    kernel) would start a plain kernel. This refuses it just before the launch, with the reason.
    """

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        if not isinstance(self.provisioner, WarmProvisioner):
            problem = (f"refusing to start kernel {self.kernel_name!r} outside the sandbox: its kernelspec does not "
                       f"use the {PROVISIONER} provisioner (docs/security.md, Routes)")
            self.log.error(problem)
            raise WarmKernelError(problem)
        await super()._async_launch_kernel(kernel_cmd, **kw)


# ---------------------------------------------------------------- student ids as literals


def id_problem(student: str) -> str | None:
    """Why `student` cannot be used as one literal folder name under submitted/, or None when it can."""
    if not student or student in (".", ".."):
        return f"student id {student!r} is not a folder name"
    if "/" in student or os.sep in student or "\0" in student:
        return f"student id {student!r} contains a path separator"
    if student != student.strip():
        return f"student id {student!r} starts or ends with whitespace (nbgrader would strip it: another student)"
    return None


class LiteralAutograde(Autograde):
    """nbgrader's Autograde for one student, whose id is a folder name, never a glob pattern.

    nbgrader globs `submitted/<student_id>/<assignment>`: `*` or `[ab]c` would match other students' folders.
    Here the id is escaped, so only the folder with exactly that name is graded; nbgrader then takes the id
    back from that folder's path, which is literal.
    """

    def init_notebooks(self) -> None:
        student = self.coursedir.student_id
        problem = id_problem(student)
        if problem is not None:
            self.log.error(problem)
            raise NbGraderException(problem)
        original = self.coursedir.student_id
        self.coursedir.student_id = glob.escape(student)
        try:
            super().init_notebooks()
        finally:
            self.coursedir.student_id = original
        for folder in self.assignments:  # belt and braces: exactly the one folder
            if Path(folder).parent.name != student:
                raise NbGraderException(f"nbgrader matched {folder} for student id {student!r}")


# ---------------------------------------------------------------- the writer: exactly what a worker executed


class SubmissionChanged(RuntimeError):
    """The submission on disk is not the one the worker executed."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class VerifyingExporter(NotebookExporter):
    """Reads the submission once, and converts it only if its bytes are the ones the worker executed."""

    def from_filename(self, filename: str, resources: dict[str, Any] | None = None, **kw: Any):
        replay = (resources or {}).get(REPLAY_KEY)
        if replay is None or os.path.abspath(filename) != replay["submitted"]:
            return super().from_filename(filename, resources, **kw)  # the writer's own autograded copy
        data = Path(filename).read_bytes()
        if sha256(data) != replay["sha256"]:
            raise SubmissionChanged(
                "the submission changed after it was read for execution: not recorded; the next `make grade` "
                "grades the new version"
            )
        resources = dict(resources or {})
        resources.setdefault("metadata", {})
        resources["metadata"].update(name=Path(filename).stem, path=str(Path(filename).parent))
        return self.from_notebook_node(nbformat.reads(data.decode("utf-8"), as_version=4), resources=resources,
                                       **kw)


class ReplayAutograde(LiteralAutograde):
    """The writer's Autograde: records one student's worker execution; it has no way to execute.

    `replay` (set per student by coursekit.engine.autograder): {"sha256": digest of the submitted bytes the worker
    executed, "executed": the worker's autograded notebook}. The submission is read through
    `VerifyingExporter`; `ReplayExecution` (coursekit/steps/preprocessors.py) takes the outputs from "executed".
    """

    replay: dict[str, str] | None = None

    def start(self) -> None:
        from nbconvert.preprocessors import ExecutePreprocessor

        executes = [pp.__name__ for pp in self.autograde_preprocessors
                    if isinstance(pp, type) and issubclass(pp, ExecutePreprocessor)]
        if executes or autograde_route(os.environ) != "replay":
            problem = (f"the gradebook writer would execute ({', '.join(executes) or 'no replay route'}): "
                       f"it must replay a worker's execution (set {REPLAY_ENV}; nbgrader_config.py)")
            self.log.error(problem)
            raise NbGraderException(problem)
        if self.replay is None:
            problem = "no execution by a worker was handed to the writer for this submission: not recorded"
            self.log.error(problem)
            raise NbGraderException(problem)
        self.exporter_class = VerifyingExporter
        super().start()

    def init_single_notebook_resources(self, notebook_filename: str) -> dict[str, Any]:
        resources = super().init_single_notebook_resources(notebook_filename)
        if self.replay is not None:
            info = resources["nbgrader"]
            folder = self.coursedir.format_path(self.coursedir.submitted_directory, info["student"], info["assignment"])
            resources[REPLAY_KEY] = {
                **self.replay, "submitted": os.path.abspath(os.path.join(folder, f"{info['notebook']}.ipynb")),
            }
        return resources
