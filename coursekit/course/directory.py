"""Where things are in the course directory, and running nbgrader's own commands in it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from coursekit import ASSIGNMENT

# The gradebook's SQLAlchemy URL, for coursekit and for the nbgrader commands it runs (nbgrader_config.py).
DB_URL_ENV = "COURSEKIT_DB_URL"
# Set only where the instructor chose plain, unsandboxed kernels for trusted notebooks (`coursekit grade --cold`,
# `make bench`'s plain run): without it or the kit's warm parent, nbgrader_config.py refuses to autograde.
UNSANDBOXED_ENV = "COURSEKIT_UNSANDBOXED_KERNELS"


class CourseError(RuntimeError):
    """A step failed; the message says which and what to do."""


@dataclass(frozen=True)
class Course:
    root: Path
    # None: nbgrader's default gradebook, SQLite in gradebook.db in the root. Only the instructor's own
    # course (`here`) takes COURSEKIT_DB_URL, so scratch courses never write to the real gradebook.
    gradebook_url: str | None = None
    # nbgrader's INFO lines (what it copies, converts, writes) are for debugging: shown with --verbose only.
    verbose: bool = False

    @classmethod
    def here(cls, db_url: str | None = None) -> Course:
        """The course directory: the nearest folder, from the working directory up, with nbgrader_config.py.

        Its gradebook: `db_url`, else COURSEKIT_DB_URL, else SQLite in gradebook.db there.
        """
        for folder in (Path.cwd(), *Path.cwd().parents):
            if (folder / "nbgrader_config.py").is_file() and (folder / "source" / ASSIGNMENT).is_dir():
                return cls(folder, db_url or os.environ.get(DB_URL_ENV) or None)
        raise CourseError(
            "no course directory here: run this from the course kit's folder (the one with nbgrader_config.py)"
        )

    @property
    def source_notebook(self) -> Path:
        return self.root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

    @property
    def release_notebook(self) -> Path:
        return self.root / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

    @property
    def submitted(self) -> Path:
        return self.root / "submitted"

    @property
    def autograded(self) -> Path:
        return self.root / "autograded"

    @property
    def feedback(self) -> Path:
        return self.root / "feedback"

    @property
    def demo_cohort(self) -> Path:
        return self.root / "demo" / "cohort"

    @property
    def db_url(self) -> str:
        return self.gradebook_url or f"sqlite:///{self.root / 'gradebook.db'}"

    def submitted_notebook(self, student_id: str) -> Path:
        return self.submitted / student_id / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

    def demo_notebook(self, student_id: str) -> Path:
        return self.demo_cohort / student_id / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

    def submit(self, student_id: str, notebook: Path) -> None:
        """Put `notebook` where nbgrader looks for this student's submission."""
        target = self.submitted_notebook(student_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(notebook, target)

    def scratch_copy(self, target: Path) -> Course:
        """A copy of what grading reads (source, release, demo, config), with no grading output."""
        for folder in ("source", "release", "demo"):
            shutil.copytree(self.root / folder, target / folder)
        shutil.copy(self.root / "nbgrader_config.py", target / "nbgrader_config.py")
        return Course(target)

    def environment(self) -> dict[str, str]:
        """The environment nbgrader runs in: this Python's scripts first on PATH, TensorFlow's chatter off."""
        env = dict(os.environ)
        # Which route an nbgrader autograde takes is the kit's to say for each process it starts (routes.py), never
        # the instructor's shell's.
        for route in (UNSANDBOXED_ENV, "COURSEKIT_WARM_SOCKET", "COURSEKIT_REPLAY_DIR", "COURSEKIT_EXECUTE_ONLY"):
            env.pop(route, None)
        # nbgrader runs `alembic` (and kernels) from PATH: make it this environment's.
        env["PATH"] = os.pathsep.join([str(Path(nbgrader_executable()).parent), env.get("PATH", "")])
        # TensorFlow's C++ start-up chatter says nothing to an instructor; errors still show.
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # Always set, so a COURSEKIT_DB_URL meant for another course never reaches this one's nbgrader.
        env[DB_URL_ENV] = self.db_url
        return env

    def nbgrader(
        self, *args: str, quiet: bool = False, warm: bool = False, env: dict[str, str] | None = None,
        unsandboxed: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run `nbgrader ARGS` in the course directory with the kit's config.

        `warm`: kernels forked from the warm parent, sandboxed. `unsandboxed`: plain kernels with the
        instructor's permissions, for trusted notebooks only; without either, `autograde` is refused
        (coursekit/engine/routes.py).
        """
        from coursekit.kernels.warm_kernels import warm_environment

        base = dict(env if env is not None else self.environment())
        if unsandboxed and not warm:
            base[UNSANDBOXED_ENV] = "1"
        # `nbgrader validate` is argparse, not a traitlets app: it takes no --log-level (and logs no INFO).
        level = [] if self.verbose or args[:1] == ("validate",) else ["--log-level=WARN"]
        with warm_environment(base) if warm else contextlib.nullcontext(base) as run_env:
            result = subprocess.run(
                [nbgrader_executable(), *args, *level], cwd=self.root, env=run_env, text=True,
                stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None,
                check=False,
            )
        if result.returncode != 0:
            detail = f"\n{result.stdout[-4000:]}" if quiet and result.stdout else ""
            raise CourseError(f"`nbgrader {' '.join(args)}` failed with exit code {result.returncode}.{detail}")
        return result


def nbgrader_executable() -> str:
    beside = Path(sys.executable).with_name("nbgrader")
    if beside.exists():
        return str(beside)
    found = shutil.which("nbgrader")
    if found is None:
        raise CourseError("nbgrader is not installed: run `make` targets, which set up .venv first")
    return found
