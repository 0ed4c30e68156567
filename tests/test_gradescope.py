"""The Gradescope autograder (coursekit/gradescope/): the zip, results.json, finding the notebook, and (slow) whole
runs of run_autograder at the real /autograder paths, in a mount namespace, against `make grade`'s scores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from coursekit import ASSIGNMENT
from coursekit.engine.one_notebook import Verdict
from coursekit.exports import scores
from coursekit.gradescope import build, results, run, settings

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = f"{ASSIGNMENT}.ipynb"


def demo(student: str) -> Path:
    return REPO / "demo" / "cohort" / student / ASSIGNMENT / NOTEBOOK


# ---------------------------------------------------------------- the zip


def test_zip_layout_follows_the_specification(tmp_path: Path) -> None:
    target = build.build(tmp_path / "a.zip")
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    # setup.sh and run_autograder at the root, executable; the rest unpacks to /autograder/source.
    assert {"setup.sh", "run_autograder"} <= names
    assert modes["setup.sh"] & 0o111 and modes["run_autograder"] & 0o111
    for needed in ("coursekit/gradescope/run.py", "coursekit/engine/one_notebook.py", "grader_tests/checks.py",
                   "grader_tests/reference.py", "grader_observe/__init__.py", "nbgrader_config.py",
                   "requirements.lock", "pyproject.toml", f"source/{ASSIGNMENT}/{NOTEBOOK}",
                   f"release/{ASSIGNMENT}/{NOTEBOOK}", f"release/{ASSIGNMENT}/lab_setup.py"):
        assert needed in names, needed
    assert not [n for n in names if n.startswith("/") or ".." in n.split("/")]
    # Never grading state, an environment or byte code.
    for name in names:
        parts = name.split("/")
        assert parts[0] not in {".venv", "submitted", "autograded", "feedback", "intake", "gradebook.db",
                                "grades.csv", "gradescope", "tests"}, name
        assert "__pycache__" not in parts and not name.endswith(".pyc"), name
    # The same kit gives the same zip.
    assert build.build(tmp_path / "b.zip").read_bytes() == target.read_bytes()


def test_scripts_name_the_real_paths() -> None:
    runner = (Path(build.__file__).parent / "run_autograder").read_text()
    assert "/autograder/source" in runner and "coursekit.gradescope.run" in runner
    assert Path("/autograder/results/results.json") == run.RESULTS
    assert Path("/autograder/submission") == run.SUBMISSION


# ---------------------------------------------------------------- results.json


def _verdicts() -> dict[str, Verdict]:
    maxima = run.max_points(REPO / "release" / ASSIGNMENT / NOTEBOOK)
    return {g: Verdict(i % 2 == 0, f"message {g}", p if i % 2 == 0 else 0.0, p)
            for i, (g, p) in enumerate(maxima.items())}


def test_every_grade_cell_has_a_test_name() -> None:
    maxima = run.max_points(REPO / "release" / ASSIGNMENT / NOTEBOOK)
    assert len(maxima) == 11 and sum(maxima.values()) == 19
    assert set(maxima) == set(results.DESCRIPTIONS)


def test_results_follow_the_specification() -> None:
    verdicts = _verdicts()
    content = results.build(verdicts, execution_time=12.34)
    assert results.problems(content) == []
    json.dumps(content)  # plain JSON types
    assert content["score"] == sum(v.points for v in verdicts.values())
    assert isinstance(content["execution_time"], float) and isinstance(content["output"], str)
    graded = content["tests"][1:]
    assert [t["tags"][1] for t in graded] == list(verdicts)
    for test, (grade_id, verdict) in zip(graded, verdicts.items(), strict=True):
        assert test["name"] == f"{scores.group_of(grade_id)}: {results.DESCRIPTIONS[grade_id]}"
        assert (test["score"], test["max_score"], test["output"]) == (verdict.points, verdict.max_points,
                                                                    verdict.message)
        assert test["visibility"] == settings.VISIBILITY
        assert test["status"] == ("passed" if verdict.passed else "failed")
    submission = content["tests"][0]
    assert submission["status"] == "passed" and submission["visibility"] == "visible" and "score" not in submission


@pytest.mark.parametrize("visibility", results.VISIBILITIES)
def test_every_visibility_is_valid(visibility: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "VISIBILITY", visibility)
    content = results.build(_verdicts(), execution_time=1)
    assert results.problems(content) == []
    assert {t["visibility"] for t in content["tests"][1:]} == {visibility}
    assert content["tests"][0]["visibility"] == settings.SUBMISSION_VISIBILITY == "visible"
    assert ("of 19 points" in content["output"]) == (visibility == "visible")


def test_a_problem_gives_zero_and_is_shown_at_once() -> None:
    maxima = run.max_points(REPO / "release" / ASSIGNMENT / NOTEBOOK)
    content = results.build(run.zero(maxima, "x"), execution_time=1, problem="there is no notebook")
    assert results.problems(content) == []
    assert content["score"] == 0 and "there is no notebook" in content["output"]
    assert content["tests"][0]["status"] == "failed" and content["tests"][0]["visibility"] == "visible"
    assert sum(t.get("max_score", 0) for t in content["tests"]) == 19


@pytest.mark.parametrize("bad", [
    {"score": "19"}, {"score": True}, {"tests": {}}, {"visibility": "sometimes"}, {"tests": [{"score": 1, "nam": 2}]},
    {"tests": [{"max_score": 2}]}, {"tests": [{"score": 1, "status": "ok"}]},
])
def test_the_checker_finds_what_breaks_the_specification(bad: dict[str, object]) -> None:
    assert results.problems(bad)


def test_results_are_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "results" / "results.json"
    path.parent.mkdir()
    path.symlink_to(tmp_path / "elsewhere")  # replaced, never followed
    results.write({"score": 1}, path)
    assert not path.is_symlink() and json.loads(path.read_text()) == {"score": 1}
    assert not (tmp_path / "elsewhere").exists() and os.listdir(path.parent) == ["results.json"]


# ---------------------------------------------------------------- finding the notebook


def _submission(tmp_path: Path) -> Path:
    folder = tmp_path / "submission"
    folder.mkdir()
    return folder


def test_the_notebook_is_found_at_the_top_or_in_a_folder(tmp_path: Path) -> None:
    folder = _submission(tmp_path)
    (folder / "work").mkdir()
    shutil.copy(demo("correct_reference"), folder / "work" / NOTEBOOK)
    raw, problem = run.find_notebook(folder)
    assert problem is None and raw == demo("correct_reference").read_bytes()


@pytest.mark.parametrize("case", ["missing", "renamed", "copy_suffix", "link", "link_to_folder", "fifo", "folder",
                                  "not_json", "empty", "other_notebook", "two"])
def test_an_unusable_submission_gets_a_message_to_act_on(tmp_path: Path, case: str) -> None:
    folder = _submission(tmp_path)
    target = folder / NOTEBOOK
    secret = tmp_path / "secret.ipynb"
    shutil.copy(REPO / "source" / ASSIGNMENT / NOTEBOOK, secret)  # the solutions, outside the submission
    if case == "renamed":
        shutil.copy(demo("correct_reference"), folder / "lab.ipynb")
    elif case == "copy_suffix":
        shutil.copy(demo("correct_reference"), folder / "custom_training_basics (1).ipynb")
    elif case == "link":
        target.symlink_to(secret)
    elif case == "link_to_folder":
        (tmp_path / "outside").mkdir()
        shutil.copy(secret, tmp_path / "outside" / NOTEBOOK)
        (folder / "sub").symlink_to(tmp_path / "outside")
    elif case == "fifo":
        os.mkfifo(target)
    elif case == "folder":
        target.mkdir()
    elif case == "not_json":
        target.write_text("{not json")
    elif case == "empty":
        target.write_bytes(b"")
    elif case == "other_notebook":
        target.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    elif case == "two":
        for sub in ("a", "b"):
            (folder / sub).mkdir()
            shutil.copy(demo("correct_reference"), folder / sub / NOTEBOOK)
    raw, problem = run.find_notebook(folder)
    assert raw is None and problem
    if case in ("renamed", "copy_suffix"):
        assert "Rename your notebook" in problem and ("lab.ipynb" in problem or "(1)" in problem)
    if case in ("missing", "link_to_folder"):
        assert "there is no notebook" in problem


def test_fallback_modes_close_the_kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a mount namespace, file modes are what keeps another uid out of the kit (docs/security.md)."""
    root = tmp_path / "autograder"
    source = root / "source"
    for name in ("grader_tests", "source", "demo", "coursekit", "grader_observe", "release", ".venv"):
        (source / name).mkdir(parents=True)
    (source / "nbgrader_config.py").write_text("")
    (root / "submission").mkdir()
    (root / "submission_metadata.json").write_text("{}")
    monkeypatch.setattr(run, "AUTOGRADER", root)
    monkeypatch.setattr(run, "SUBMISSION", root / "submission")
    run.close_to_kernels(source)
    assert source.stat().st_mode & 0o777 == 0o711
    assert (root / "submission").stat().st_mode & 0o777 == (root / "submission_metadata.json").stat().st_mode & 0o777
    assert (root / "submission").stat().st_mode & 0o077 == 0
    for path in source.iterdir():
        assert path.stat().st_mode & 0o007 == (0o005 if path.name in run.OPEN_TO_KERNELS else 0), path.name


# ---------------------------------------------------------------- whole runs at /autograder (slow)

# Submissions graded by run_autograder in the slow test, with what each is for.
STUDENTS = {
    "correct_reference": "correct",
    "loss_sum": "wrong: sums the squared errors",
}
# Reads the checks, the reference and the solutions, writes results.json (now and from a daemon, later), imports
# the checks; if any of it works, it kills its kernel, which costs every point: equal scores prove none did.
HOSTILE = r'''
import os, pathlib, time
found = []
for path in ("/autograder/source/grader_tests/checks.py", "/autograder/source/grader_tests/reference.py",
             "/autograder/source/source/custom_training_basics/custom_training_basics.ipynb",
             "/autograder/source/demo/cohort/correct_reference/custom_training_basics/custom_training_basics.ipynb",
             "/autograder/submission_metadata.json"):
    try:
        found.append(pathlib.Path(path).read_text()[:40])
    except OSError as exc:
        found.append(type(exc).__name__)
try:
    pathlib.Path("/autograder/results/results.json").write_text('{"score": 1000, "tests": []}')
    found.append("wrote results")
except OSError as exc:
    found.append(type(exc).__name__)
try:
    # Without a mount namespace `import grader_tests` may give an empty namespace package (its folder exists, closed):
    # what counts is reaching the checks' code.
    from grader_tests import checks, reference  # noqa: F401
    found.append("imported the checks")
except (ImportError, OSError) as exc:
    found.append(type(exc).__name__)
if os.fork() == 0:
    for _ in range(300):
        try:
            pathlib.Path("/autograder/results/results.json").write_text('{"score": 1000, "tests": []}')
        except OSError:
            pass
        time.sleep(0.2)
    os._exit(0)
if [x for x in found if not x.endswith("Error")]:
    os._exit(3)
'''
KILLER = "import os\nos._exit(1)\n"


def _with_cell(source: Path, target: Path, grade_id: str, code: str, *, prepend: bool = False) -> None:
    """A copy of `source` with `code` added to the solution cell `grade_id` (before its code with `prepend`)."""
    notebook = json.loads(source.read_text())
    for cell in notebook["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            text = "".join(cell["source"])
            cell["source"] = code + "\n" + text if prepend else text + "\n" + code
    target.write_text(json.dumps(notebook))


def _unpack(tmp_path: Path) -> Path:
    """A simulated /autograder: the zip unpacked in source/ (as Gradescope does), with this machine's .venv."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(build.build(tmp_path / "autograder.zip")) as archive:
        archive.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "run_autograder").chmod(0o755)
    (root / "source" / ".venv").symlink_to(REPO / ".venv")
    root.chmod(0o755)  # as Gradescope's /autograder
    return root


def run_autograder(root: Path, notebook: Path | None, *, drop_sys_admin: bool = False) -> dict[str, object]:
    """Run /autograder/run_autograder for `notebook` (None: an empty submission) with `root` bound on /autograder
    in a mount namespace of its own; `drop_sys_admin`: as in a Docker container (no namespaces for the sandbox)."""
    for folder in ("submission", "results"):
        shutil.rmtree(root / folder, ignore_errors=True)
        (root / folder).mkdir()
    if notebook is not None:
        shutil.copy(notebook, root / "submission" / NOTEBOOK)
    (root / "submission_metadata.json").write_text('{"users": [{"email": "student@example.edu"}]}')
    command = "/autograder/run_autograder"
    script = f"mount --make-rprivate / && mount --bind {root} /autograder"
    # This checkout's .venv finds the kit here by its editable install; on Gradescope that is /autograder/source.
    # What is secret here is hidden in the namespace, so only the /autograder copy counts.
    script += "".join(f" && mount -t tmpfs -o mode=0700 tmpfs {REPO / name}" for name in ("grader_tests", "source",
                                                                                         "demo"))
    if drop_sys_admin:
        command = f"setpriv --bounding-set -sys_admin --inh-caps -sys_admin -- {command}"
        script += _python_open_to_others(root)
    script += f" && cd /autograder && {command}"
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=900,
                          check=False)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    content = json.loads((root / "results" / "results.json").read_text())
    content["_stdout"] = log
    return content


def _python_open_to_others(root: Path) -> str:
    """Shell commands that make this Python readable by other uids in the namespace, as /usr's is on Gradescope.
    Here the base Python may sit under a closed folder (/root/.pyenv), and the .venv too (a clone in a 0700
    `mktemp -d`): each is bound aside, a 0755 tmpfs goes over the topmost closed folder on its way, and it is bound
    back at its own path. What else was in a covered folder (this checkout) is hidden from the namespace."""
    needed = dict.fromkeys(Path(p).resolve() for p in (sys.base_prefix, sys.prefix))
    closed: dict[Path, Path] = {}  # needed path -> the topmost closed folder on its way
    for path in needed:
        folder = next((f for f in reversed(path.parents) if not os.stat(f).st_mode & 0o001), None)
        if folder is not None:
            closed[path] = folder
    covers = {f for f in closed.values() if not any(f != g and g in f.parents for g in closed.values())}
    script = ""
    for index, path in enumerate(closed):
        keep = root.parent / f"python-{index}"
        keep.mkdir(exist_ok=True)
        script += f" && mount --bind {path} {keep}"
    script += "".join(f" && mount -t tmpfs -o mode=0755 tmpfs {folder}" for folder in sorted(covers))
    for index, path in enumerate(closed):
        script += f" && mkdir -p {path} && mount --move {root.parent / f'python-{index}'} {path}"
    return script


def _cells(content: dict[str, object]) -> dict[str, float]:
    return {t["tags"][1]: t["score"] for t in content["tests"] if "tags" in t}  # type: ignore[union-attr]


needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or (not Path("/autograder").is_dir()
                                and not os.access("/", os.W_OK)), reason="needs root and unshare")


@pytest.fixture(scope="module")
def autograder_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    Path("/autograder").mkdir(exist_ok=True)  # an empty mount point; everything is bound on it in a namespace
    return _unpack(tmp_path_factory.mktemp("gradescope"))


@pytest.mark.slow
@needs_root
def test_run_autograder_scores_as_make_grade(autograder_root: Path, graded) -> None:
    """A correct and a wrong demo student, in the kit's sandbox: results.json follows the specification, and each
    grade cell's score is `make grade`'s for the same notebook."""
    expected = scores.cell_scores(graded.db_url)
    for student in STUDENTS:
        content = run_autograder(autograder_root, demo(student))
        stdout = str(content.pop("_stdout"))
        assert "isolation: the kit's sandbox" in stdout
        assert results.problems(content) == [], student
        assert _cells(content) == expected[student], student
        assert content["score"] == sum(expected[student].values())
        if student == "loss_sum":
            test = next(t for t in content["tests"] if t.get("tags", [None, None])[1] == "test_loss_values")
            assert "did you sum the squared errors" in test["output"]


@pytest.mark.slow
@needs_root
def test_fallback_keeps_a_hostile_kernel_out(autograder_root: Path, graded, tmp_path: Path) -> None:
    """Without namespaces (no CAP_SYS_ADMIN, as in a Docker container): a submission that reads the checks, the
    reference and the solutions, writes results.json (at once and from a daemon) and imports the checks, then kills
    its kernel in train. It read and wrote nothing (else it would have lost its model points), results.json is the
    grader's, and only what ran before the kernel died scores, as `make grade` scores it."""
    expected = scores.cell_scores(graded.db_url)["correct_reference"]
    notebook = tmp_path / NOTEBOOK
    _with_cell(demo("correct_reference"), notebook, "model", HOSTILE)
    _with_cell(notebook, notebook, "train", KILLER, prepend=True)
    content = run_autograder(autograder_root, notebook, drop_sys_admin=True)
    stdout = str(content.pop("_stdout"))
    assert "isolation: FALLBACK" in stdout
    assert results.problems(content) == []
    cells = _cells(content)
    before_train = ("test_model", "test_loss", "test_plot_data")
    assert {g: v for g, v in cells.items() if g.startswith(before_train)} == {
        g: v for g, v in expected.items() if g.startswith(before_train)}, stdout[-3000:]
    assert all(v == 0 for g, v in cells.items() if not g.startswith(before_train))
    assert content["score"] == sum(cells.values()) == 9
    train = next(t for t in content["tests"] if t.get("tags", [None, None])[1] == "test_train_step")
    assert "died" in train["output"] or "did not run" in train["output"], train["output"]


@pytest.mark.slow
@needs_root
def test_missing_notebook_gets_zero_and_a_message(autograder_root: Path) -> None:
    content = run_autograder(autograder_root, None)
    content.pop("_stdout")
    assert results.problems(content) == [] and content["score"] == 0
    assert "there is no notebook" in content["output"]


@pytest.mark.slow
def test_grading_past_the_time_limit_is_stopped(tmp_path: Path) -> None:
    """The grading child (and the warm parent it started) is killed at the budget; run.py then writes a
    results.json of its own (main() does so for any None)."""
    notebook = tmp_path / NOTEBOOK
    shutil.copy(demo("correct_reference"), notebook)
    verdicts, why = run._grade_in_child(notebook, budget=3, fallback=False)
    assert verdicts is None and "did not finish within 3 s" in why
    leftovers = subprocess.run(["pgrep", "-f", str(notebook)], capture_output=True, text=True, check=False).stdout
    assert not leftovers.strip()
