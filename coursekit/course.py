"""Where things are in the course directory, and running nbgrader's own commands in it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import ASSIGNMENT


class CourseError(RuntimeError):
    """A step failed; the message says which and what to do."""


@dataclass(frozen=True)
class Course:
    root: Path

    @classmethod
    def here(cls) -> Course:
        """The course directory: the nearest folder, from the working directory up, with nbgrader_config.py."""
        for folder in (Path.cwd(), *Path.cwd().parents):
            if (folder / "nbgrader_config.py").is_file() and (folder / "source" / ASSIGNMENT).is_dir():
                return cls(folder)
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
        return f"sqlite:///{self.root / 'gradebook.db'}"

    def submitted_notebook(self, student_id: str) -> Path:
        return self.submitted / student_id / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

    def nbgrader(self, *args: str, quiet: bool = False, warm: bool = False) -> subprocess.CompletedProcess[str]:
        """Run `nbgrader ARGS` in the course directory, with the kit's config; `warm`: forked kernels."""
        command = [_nbgrader_executable(), *args]
        env = dict(os.environ)
        # nbgrader runs `alembic` (and kernels) from PATH: make it this environment's.
        env["PATH"] = os.pathsep.join([str(Path(command[0]).parent), env.get("PATH", "")])
        # TensorFlow's C++ start-up chatter says nothing to an instructor; errors still show.
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from .warm_kernels import warm_environment

        with warm_environment(env) if warm else contextlib.nullcontext(env) as run_env:
            result = subprocess.run(
                command, cwd=self.root, env=run_env, text=True,
                stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None,
                check=False,
            )
        if result.returncode != 0:
            detail = f"\n{result.stdout[-4000:]}" if quiet and result.stdout else ""
            raise CourseError(f"`nbgrader {' '.join(args)}` failed with exit code {result.returncode}.{detail}")
        return result


def _nbgrader_executable() -> str:
    beside = Path(sys.executable).with_name("nbgrader")
    if beside.exists():
        return str(beside)
    found = shutil.which("nbgrader")
    if found is None:
        raise CourseError("nbgrader is not installed: run `make` targets, which set up .venv first")
    return found
