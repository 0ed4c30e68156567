"""What `run_autograder` does on Gradescope: grade /autograder/submission's notebook as `make grade` would and write
/autograder/results/results.json, always.

The grading itself is coursekit/engine/one_notebook.py (a scratch course with this kit's release, checks and
config; nbgrader's autograde with the kit's steps; the student's code in a sandboxed kernel forked from the warm
parent). It runs in a child process: this parent, which imports no TensorFlow and runs no student code, writes
results.json whatever becomes of the child (a crash, the memory limit, the time limit). A results.json saying
"grading did not finish" is written first, so even Gradescope's own kill leaves one.

Isolation. Where the container allows namespaces, each kernel gets the kit's sandbox (coursekit/kernels/sandbox.py,
docs/security.md) as in `make grade`. A container that does not (Docker's default seccomp profile and capabilities
refuse them) still lets root change uid: the kit's kernel then runs as a uid of its own (2 000 000 000 + its pid,
no groups, no_new_privs: the "unprivileged user" of Gradescope's and PrairieLearn's advice), with the kit's
rlimits, and file modes keep it out: /autograder/source is closed to other users except the Python environment,
`grader_observe` and the release; /autograder/submission is closed; /autograder/results is root's. The grader's
own temp folders are made traversable (not listable) so the kernel can reach its working folder and sockets. With
neither, nothing is graded. Which one was used is printed to stdout, which Gradescope shows to instructors only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import nbformat

from coursekit import ASSIGNMENT
from coursekit.engine import intake
from coursekit.engine.one_notebook import KIT, Verdict
from coursekit.gradescope import results, settings
from coursekit.kernels import sandbox

AUTOGRADER = Path("/autograder")
SUBMISSION = AUTOGRADER / "submission"
RESULTS = AUTOGRADER / "results" / "results.json"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
# Seconds kept, before Gradescope's limit, to stop the grader and write results.json.
MARGIN = 30
# What the grader's own processes (nbgrader, the warm parent, this one) need beside a kernel, measured with the
# kernel (README.md, "Gradescope"), rounded up.
GRADER_MEMORY_MB = 1024
# Folders Gradescope or an operating system adds to an upload that are never the student's notebook.
IGNORED_FOLDERS = {".ipynb_checkpoints", "__MACOSX", ".git"}


def max_points(release: Path | None = None) -> dict[str, float]:
    """Each grade cell's points, from the release notebook (what an empty notebook is graded against)."""
    notebook = nbformat.read(release or KIT / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    return {cell.metadata.nbgrader.grade_id: float(cell.metadata.nbgrader.get("points", 0))
            for cell in notebook.cells
            if cell.metadata.get("nbgrader", {}).get("grade") and cell.metadata.nbgrader.get("grade_id")}


def zero(maxima: dict[str, float], message: str) -> dict[str, Verdict]:
    return {grade_id: Verdict(False, message, 0.0, points) for grade_id, points in maxima.items()}


def find_notebook(folder: Path) -> tuple[bytes | None, str | None]:
    """(the notebook's bytes, None) or (None, what the student should do). Never follows a link; reads a regular
    file of at most 20 MiB (intake's reader), and only the one with the assignment's name."""
    exact: list[Path] = []
    others: list[str] = []
    for top, folders, files in os.walk(folder):  # links to folders are listed, never entered
        depth = len(Path(top).relative_to(folder).parts)
        folders[:] = [] if depth >= 2 else sorted(f for f in folders if f not in IGNORED_FOLDERS)
        for name in sorted(files):
            if name == NOTEBOOK:
                exact.append(Path(top) / name)
            elif name.lower().endswith(".ipynb"):
                others.append(str((Path(top) / name).relative_to(folder)))
    if not exact:
        if others:
            found = ", ".join(intake.shown(name) for name in others[:5])
            return None, (f"there is no {NOTEBOOK} in your submission (found: {found}). Rename your notebook to "
                          f"exactly {NOTEBOOK} and submit it again.")
        return None, (f"there is no notebook in your submission. Upload {NOTEBOOK}, the notebook you were given, "
                      "with your answers filled in.")
    exact.sort(key=lambda path: len(path.parts))
    if len(exact) > 1 and len(exact[0].parts) == len(exact[1].parts):
        places = ", ".join(intake.shown(str(p.relative_to(folder))) for p in exact[:5])
        return None, f"your submission holds several {NOTEBOOK} ({places}). Submit only one."
    path = exact[0]
    try:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        return None, f"{NOTEBOOK} could not be read ({exc.strerror}). Upload it again."
    try:
        raw = intake._read_regular(fd, path.name, intake.MAX_BYTES)
    except intake._Unusable as exc:
        return None, f"{exc}. Upload the notebook file itself."
    except OSError as exc:
        return None, f"{NOTEBOOK} could not be read ({exc.strerror}). Upload it again."
    finally:
        os.close(fd)
    if raw is None:
        return None, f"{NOTEBOOK} could not be read. Upload it again."
    graded, problem = intake.judge_notebook(raw)
    if problem is not None:
        return None, f"{problem}. Download it again from Jupyter (File > Download) and submit that file."
    return graded, None


# What a kernel running as another uid must still read in /autograder/source (without a mount namespace): its Python
# environment, the observer it imports, and the release (public). Everything else there is closed to it.
OPEN_TO_KERNELS = (".venv", "grader_observe", "release")
FALLBACK_ENV = "COURSEKIT_GRADESCOPE_FALLBACK"
# The grader's temp folders a kernel must traverse in the fallback (its working folder, its socket folder).
TRAVERSED = ("coursekit-notebook-", "coursekit-warm-")


def isolation() -> tuple[str | None, str]:
    """("sandbox" | "user" | None, what to tell the instructor): how student code can be isolated here."""
    report = sandbox.probe(sandbox.Limits.from_env())
    if not report.missing:
        return "sandbox", f"isolation: the kit's sandbox, as in `make grade`. {report.line()}"
    if sandbox.really_root() and "identity" in report.held:
        closed = [str(p) for p in (Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve())
                  if not _open_to_others(p)]
        if closed:
            return None, (f"isolation: FALLBACK impossible: a kernel of another uid cannot read this Python "
                          f"({', '.join(closed)}: a folder on the way is closed to other users; setup.sh installs "
                          f"Python in /usr). {report.line()}")
        return "user", ("isolation: FALLBACK: this container allows no namespaces, so each kernel runs as an "
                        "unprivileged uid of its own, with the kit's limits, and file modes keep it out of the "
                        f"checks, the source and the results; it has the network. {report.line()}")
    return None, (f"isolation: none possible (not root, no namespaces): refusing to run student code. "
                  f"{report.line()}")


def _open_to_others(path: Path) -> bool:
    """Whether any user can reach `path` (execute on every folder down to it) and read it."""
    folders = [*reversed(path.parents), path]
    return all(os.stat(folder).st_mode & 0o001 for folder in folders) and bool(os.stat(path).st_mode & 0o004)


def close_to_kernels(source: Path = KIT) -> None:
    """File modes for the fallback: a kernel's uid can traverse /autograder/source and read only OPEN_TO_KERNELS;
    the submission folder and Gradescope's submission metadata are closed."""
    os.chmod(source, 0o711)
    for entry in os.scandir(source):
        if entry.name not in OPEN_TO_KERNELS and not entry.is_symlink():
            os.chmod(entry.path, 0o700)
    # The submission, and Gradescope's metadata beside it (the students' names and e-mails, earlier results).
    for private in (SUBMISSION, AUTOGRADER / "submission_metadata.json"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(private, 0o700)


def _traversable_temp_folders() -> None:
    """In the grading child, fallback only: the scratch course and the warm parent's folder are made 0711, so a
    kernel of another uid reaches its working folder and sockets by their paths but lists nothing. What in them is
    secret (source/, demo/) keeps the 0700 copied from /autograder/source (close_to_kernels)."""
    original = tempfile.mkdtemp

    def mkdtemp(suffix: str | None = None, prefix: str | None = None, dir: str | None = None) -> str:
        path = original(suffix, prefix, dir)
        if prefix and prefix.startswith(TRAVERSED):
            os.chmod(path, 0o711)
        return path

    tempfile.mkdtemp = mkdtemp  # type: ignore[assignment]


def container_memory_mb() -> int | None:
    """The memory limit of this process's cgroup (the container's, on Gradescope), if there is one."""
    candidates = []
    v2 = sandbox._own_cgroup_v2()
    if v2 is not None:
        candidates.append(v2 / "memory.max")
    v1 = sandbox._own_cgroup_v1("memory")
    if v1 is not None:
        candidates.append(v1 / "memory.limit_in_bytes")
    for path in candidates:
        with contextlib.suppress(OSError, ValueError):
            limit = int(path.read_text().strip())
            if limit < 1 << 50:  # "max", or v1's "no limit" (a huge number)
                return limit >> 20
    return None


def kernel_memory_mb() -> int:
    """settings.KERNEL_MEMORY_MB, lowered to leave GRADER_MEMORY_MB of the container to the grader: a kernel that
    allocates too much gets MemoryError and loses its own points, instead of the container being killed."""
    container = container_memory_mb()
    if container is None:
        return settings.KERNEL_MEMORY_MB
    return max(256, min(settings.KERNEL_MEMORY_MB, container - GRADER_MEMORY_MB))


def _environment() -> dict[str, str]:
    """The grading child's environment: the kit's limits fitted to Gradescope's (settings.py)."""
    env = dict(os.environ)
    env.setdefault("COURSEKIT_SANDBOX_MEMORY_MB", str(kernel_memory_mb()))
    # The kernel's deadline (the warm parent enforces it) leaves time for the steps before and after it.
    env.setdefault("COURSEKIT_SUBMISSION_DEADLINE", str(int(settings.TIME_LIMIT_SECONDS * 0.6)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(KIT), env.get("PYTHONPATH")]))
    # The warm parent and its kernels import the kit and the observer from /autograder/source too.
    env[sandbox.EXTRA_ENV] = ",".join(filter(None, [env.get(sandbox.EXTRA_ENV), "PYTHONPATH"]))
    return env


def _grade_in_child(notebook: Path, budget: float, fallback: bool) -> tuple[dict[str, Verdict] | None, str]:
    """Each grade cell's verdict, graded in a child process given `budget` seconds; or (None, why not)."""
    out = notebook.with_name("verdicts.json")
    env = _environment()
    if fallback:
        env.update({sandbox.ALLOW_ENV: "1", FALLBACK_ENV: "1"})
    child = subprocess.Popen([sys.executable, "-m", "coursekit.gradescope.run", "--grade", str(notebook), str(out)],
                             env=env, cwd=KIT, start_new_session=True)
    try:
        code = child.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        # Its process group holds the warm parent too; the kernels' supervisors end them when it dies.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        return None, f"grading did not finish within {budget:.0f} s"
    if code != 0 or not out.is_file():
        return None, f"the grader failed (exit code {code}; the instructor can see why in the autograder's output)"
    return {grade_id: Verdict(**fields) for grade_id, fields in json.loads(out.read_text()).items()}, ""


def grade_submission(start: float) -> dict[str, object]:
    maxima = max_points()
    raw, problem = find_notebook(SUBMISSION)
    if raw is None:
        print(f"coursekit gradescope: not graded: {problem}", flush=True)
        return results.build(zero(maxima, problem or ""), execution_time=time.monotonic() - start, problem=problem)
    mode, said = isolation()
    print(f"coursekit gradescope: {said}", flush=True)
    print(f"coursekit gradescope: container memory {container_memory_mb() or 'unlimited'} MiB, kernel "
          f"{_environment()['COURSEKIT_SANDBOX_MEMORY_MB']} MiB, time limit {settings.TIME_LIMIT_SECONDS} s "
          f"(coursekit/gradescope/settings.py)", flush=True)
    if mode is None:
        why = "the autograder cannot isolate student code in this container"
        return results.build(zero(maxima, f"not graded: {why}"), execution_time=time.monotonic() - start,
                             summary=f"Your notebook could not be graded: {why}. Your instructor can see why.")
    if mode == "user":
        close_to_kernels()
    # A private copy: the grader reads the bytes judged above, never the submission folder again.
    with tempfile.TemporaryDirectory(prefix="coursekit-gradescope-") as private:
        notebook = Path(private) / NOTEBOOK
        notebook.write_bytes(raw)
        budget = settings.TIME_LIMIT_SECONDS - MARGIN - (time.monotonic() - start)
        verdicts, why = _grade_in_child(notebook, budget, mode == "user")
    elapsed = time.monotonic() - start
    if verdicts is None:
        print(f"coursekit gradescope: {why}", flush=True)
        return results.build(zero(maxima, f"not graded: {why}"), execution_time=elapsed,
                             summary=f"Your notebook could not be graded: {why}. Your score is 0 for now; "
                                     "your instructor can see the autograder's output.")
    for grade_id in maxima.keys() - verdicts.keys():
        verdicts[grade_id] = Verdict(False, "not graded", 0.0, maxima[grade_id])
    return results.build(verdicts, execution_time=elapsed)


def _secure_results_folder() -> None:
    """results/ is root's and not writable by anyone else, whatever the image left there."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if sandbox.really_root():
        os.chown(RESULTS.parent, 0, 0, follow_symlinks=False)
    os.chmod(RESULTS.parent, 0o755)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--grade"]:
        return _child(Path(args[1]), Path(args[2]))
    start = time.monotonic()
    _secure_results_folder()
    maxima = max_points()
    results.write(results.build(zero(maxima, "grading did not finish"), execution_time=0,
                                summary="Grading did not finish: your score is 0 for now. Your instructor can see "
                                        "the autograder's output."), RESULTS)
    try:
        content = grade_submission(start)
    except Exception:
        traceback.print_exc(file=sys.stdout)
        content = results.build(zero(maxima, "not graded: the autograder failed"),
                                execution_time=time.monotonic() - start,
                                summary="The autograder failed on this submission (not a problem in your notebook, "
                                        "as far as it knows). Your instructor can see why.")
    results.write(content, RESULTS)
    print(f"coursekit gradescope: score {content['score']} in {content['execution_time']} s, written to {RESULTS}",
          flush=True)
    return 0


def _child(notebook: Path, out: Path) -> int:
    """In the grading child: grade `notebook` as `make grade` would, write the verdicts to `out`."""
    from dataclasses import asdict

    from coursekit.engine import one_notebook

    if os.environ.get(FALLBACK_ENV):
        _traversable_temp_folders()
    verdicts = one_notebook.grade(notebook)
    out.write_text(json.dumps({grade_id: asdict(verdict) for grade_id, verdict in verdicts.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
