"""Fast checks of the routes student code may take (engine/routes.py): real nbgrader converters, no kernels."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbgrader.converters.base import NbGraderException
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config

from coursekit.course.directory import UNSANDBOXED_ENV, Course
from coursekit.engine import autograder
from coursekit.engine.routes import (
    REPLAY_ENV,
    REPLAY_KEY,
    LiteralAutograde,
    RefusingExporter,
    ReplayAutograde,
    SubmissionChanged,
    VerifyingExporter,
    autograde_route,
    id_problem,
)
from coursekit.kernels.warm_kernels import SOCKET_ENV

# Folder names a student could create through an exchange; each must only ever mean itself.
ODD_FOLDERS = ("ann", "bob", "*", "[ab]nn", "a?n", "**")


def _course(tmp_path: Path) -> CourseDirectory:
    for student in ODD_FOLDERS:
        folder = tmp_path / "submitted" / student / "hw"
        folder.mkdir(parents=True)
        nbformat.write(nbformat.v4.new_notebook(), folder / "nb.ipynb")
    return CourseDirectory(root=str(tmp_path), assignment_id="hw")


@pytest.mark.parametrize("student", ODD_FOLDERS)
def test_a_student_id_names_exactly_its_own_folder(tmp_path: Path, student: str) -> None:
    coursedir = _course(tmp_path)
    coursedir.student_id = student
    converter = LiteralAutograde(coursedir=coursedir)
    converter.init_notebooks()
    assert list(converter.assignments) == [str(tmp_path / "submitted" / student / "hw")]
    assert coursedir.student_id == student


@pytest.mark.parametrize("student", ["[ab]n", "b*", "?nn"])
def test_a_pattern_that_is_nobody_s_folder_grades_nobody(tmp_path: Path, student: str) -> None:
    coursedir = _course(tmp_path)
    coursedir.student_id = student
    with pytest.raises(NbGraderException):
        LiteralAutograde(coursedir=coursedir).init_notebooks()


@pytest.mark.parametrize("student", ["", ".", "..", "../ann", "ann/../bob", " ann", "ann\t"])
def test_ids_that_cannot_be_one_folder_name_are_refused(tmp_path: Path, student: str) -> None:
    assert id_problem(student) is not None
    if student != student.strip():
        return  # nbgrader's CourseDirectory strips the id itself: refused by the kit before it gets there
    coursedir = _course(tmp_path)
    coursedir.student_id = student
    with pytest.raises(NbGraderException, match=r"folder name|path separator"):
        LiteralAutograde(coursedir=coursedir).init_notebooks()


@pytest.mark.parametrize(("env", "route"), [
    ({}, None),
    ({UNSANDBOXED_ENV: "yes"}, None),
    ({UNSANDBOXED_ENV: "1"}, "unsandboxed"),
    ({SOCKET_ENV: "/tmp/x/fork.sock"}, "warm"),
    ({REPLAY_ENV: "/tmp/replay", SOCKET_ENV: "/tmp/x/fork.sock", UNSANDBOXED_ENV: "1"}, "replay"),
])
def test_the_route_follows_what_the_kit_set(env: dict[str, str], route: str | None) -> None:
    assert autograde_route(env) == route


def test_the_kit_never_passes_a_route_of_the_instructor_s_shell_on(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (UNSANDBOXED_ENV, SOCKET_ENV, REPLAY_ENV, "COURSEKIT_EXECUTE_ONLY"):
        monkeypatch.setenv(name, "1")
    env = Course(Path("/nonexistent")).environment()
    assert autograde_route(env) is None and "COURSEKIT_EXECUTE_ONLY" not in env


def test_autograde_outside_the_kit_is_refused_before_it_converts_anything(tmp_path: Path) -> None:
    coursedir = _course(tmp_path)
    coursedir.student_id = "ann"
    config = Config()
    config.Autograde.exporter_class = RefusingExporter
    converter = LiteralAutograde(coursedir=coursedir, config=config)
    converted: list[str] = []
    converter.convert_notebooks = lambda: converted.append("converted")  # type: ignore[method-assign]
    with pytest.raises(NbGraderException, match="make grade"):
        converter.start()
    assert converted == [] and not (tmp_path / "autograded").exists()


def test_the_writer_refuses_without_a_worker_execution_or_with_an_execute_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbgrader.preprocessors import Execute

    from coursekit.steps.preprocessors import ReplayExecution

    coursedir = _course(tmp_path)
    coursedir.student_id = "ann"
    monkeypatch.setenv(REPLAY_ENV, str(tmp_path))
    replaying = Config()
    replaying.Autograde.autograde_preprocessors = [ReplayExecution]
    with pytest.raises(NbGraderException, match="no execution by a worker"):
        ReplayAutograde(coursedir=coursedir, config=replaying).start()
    executing = Config()
    executing.Autograde.autograde_preprocessors = [ReplayExecution, Execute]
    for config in (executing, Config()):  # nbgrader's default steps execute too
        writer = ReplayAutograde(coursedir=coursedir, config=config)
        writer.replay = {"sha256": "0" * 64, "executed": str(tmp_path / "x.ipynb")}
        with pytest.raises(NbGraderException, match="would execute"):
            writer.start()
    monkeypatch.delenv(REPLAY_ENV)
    with pytest.raises(NbGraderException, match="no replay route"):
        ReplayAutograde(coursedir=coursedir, config=replaying).start()
    assert not (tmp_path / "autograded").exists()


def _submission(tmp_path: Path, text: str) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / "nb.ipynb"
    path.write_text(nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(text)])))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return path, {REPLAY_KEY: {"sha256": digest, "executed": "", "submitted": str(path)}}


def test_the_writer_reads_exactly_the_bytes_the_worker_executed(tmp_path: Path) -> None:
    path, resources = _submission(tmp_path, "x = 1")
    notebook, _ = VerifyingExporter().from_filename(str(path), resources)
    assert "x = 1" in notebook
    path.write_bytes(path.read_bytes().replace(b"x = 1", b"x = 2"))
    with pytest.raises(SubmissionChanged, match="changed"):
        VerifyingExporter().from_filename(str(path), resources)
    path.write_bytes(path.read_bytes() + b"\n")  # not even a byte more
    with pytest.raises(SubmissionChanged):
        VerifyingExporter().from_filename(str(path), resources)


def test_the_writer_s_reasons_name_the_refusal_not_its_module() -> None:
    message = ('Traceback (most recent call last):\n  File "x.py", line 1, in y\n'
               "coursekit.engine.routes.SubmissionChanged: the submission changed after it was read\n")
    assert autograder._reason([message]) == "SubmissionChanged: the submission changed after it was read"


@pytest.mark.parametrize("student", ["*", "a?n", "[ab]nn", "../ann", " ann"])
def test_grade_student_refuses_an_id_nbgrader_would_read_as_a_pattern_or_a_path(
    tmp_path: Path, student: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from coursekit import ASSIGNMENT, cli

    (tmp_path / "source" / ASSIGNMENT).mkdir(parents=True)
    course = Course(tmp_path)
    course.submit("ann", Path(__file__).resolve().parents[1] / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    assert cli.main(["grade", "--student", student], course=course) == 1
    err = capsys.readouterr().err
    words = ("glob", "pattern", "path", "separator", "whitespace", "white space")
    assert "student id" in err and any(word in err for word in words), err
    assert not (tmp_path / "autograded").exists() and not (tmp_path / "gradebook.db").exists()


def test_on_the_warm_route_a_kernel_the_warm_parent_does_not_fork_is_never_launched() -> None:
    """A plain kernelspec (LocalProvisioner) reached on the warm route: refused before any process starts."""
    import asyncio

    import psutil

    from coursekit.engine.routes import SandboxedKernelManager
    from coursekit.kernels.warm_kernels import WarmKernelError

    manager = SandboxedKernelManager(kernel_name="python3")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(WarmKernelError, match="outside the sandbox"):
        asyncio.run(manager.start_kernel())
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before
    assert not manager.has_kernel
    asyncio.run(manager.cleanup_resources())
