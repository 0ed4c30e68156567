"""The sandbox around warm kernels: real kernels forked from a real warm parent try what a hostile submission would."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

from coursekit import ASSIGNMENT, sandbox
from coursekit.course import Course
from coursekit.warm_kernels import SOCKET_ENV, warm_environment

from .conftest import REPO, copy_course

# ---------------------------------------------------------------- fast: no kernel


def test_report_line_names_what_holds_and_what_is_missing() -> None:
    report = sandbox.Report(held={"network": "", "memory": "2 GiB (cgroup v1)"}, missing={"filesystem": "no mount"})
    assert report.line() == "sandbox: network ✓ memory 2 GiB (cgroup v1) ✓ filesystem ✗ (no mount)"
    assert sandbox.Report.from_json(report.to_json()) == report


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSEKIT_SANDBOX_MEMORY_MB", "512")
    monkeypatch.setenv("COURSEKIT_SUBMISSION_DEADLINE", "7.5")
    limits = sandbox.Limits.from_env()
    assert limits.memory == 512 * sandbox.MiB and limits.deadline == 7.5


def test_the_kernel_sees_the_venv_and_never_the_checks() -> None:
    assert ".venv" in sandbox.KERNEL_VISIBLE
    assert not any(name.startswith(("grader_tests", "source", "gradebook")) for name in sandbox.KERNEL_VISIBLE)


@pytest.mark.skipif(os.geteuid() != 0 and not Path("/proc/self/ns/user").exists(), reason="no namespaces here")
def test_probe_reports_every_protection_on_this_machine() -> None:
    report = sandbox.probe(sandbox.Limits())
    assert not report.missing, report.line()
    assert {"filesystem", "network", "memory", "processes", "cpu", "file size", "deadline"} <= set(report.held)


NOBODY_PROBE = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from coursekit import sandbox
print(sandbox.probe(sandbox.Limits()).to_json())
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not os.access("/usr/bin/python3", os.X_OK),
                    reason="needs root to become nobody, setpriv and the system Python")
def test_without_root_a_user_namespace_gives_the_same_protections() -> None:
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    sandbox_source = REPO / "coursekit" / "sandbox.py"
    if subprocess.run([*as_nobody, "test", "-r", str(sandbox_source)], check=False).returncode != 0:
        pytest.skip(f"nobody cannot read {sandbox_source} (a clone in a private folder, as `mktemp -d` makes)")
    result = subprocess.run(
        [*as_nobody, "/usr/bin/python3", "-c", NOBODY_PROBE], capture_output=True, text=True, cwd="/", check=False,
    )
    assert result.returncode == 0, result.stderr
    report = sandbox.Report.from_json(result.stdout.strip().splitlines()[-1])
    if "no namespaces" in report.missing.get("filesystem", ""):
        pytest.skip("unprivileged user namespaces are off here: grading without root refuses, as it should")
    assert not report.missing, report.line()
    assert report.held["identity"] == "no capabilities" and "RLIMIT" in report.held["processes"]


# ---------------------------------------------------------------- slow: real kernels


class Kernel:
    """A kernel from the warm parent, as nbgrader starts it, and a way to run code in it."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(cwd=str(cwd), env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 60) -> str:
        """What the code printed (stdout and the error, if any)."""
        out: list[str] = []

        def collect(msg: dict) -> None:
            content = msg["content"]
            if msg["msg_type"] == "stream":
                out.append(content["text"])
            elif msg["msg_type"] == "error":
                out.append(f"{content['ename']}: {content['evalue']}")

        self.client.execute_interactive(code, timeout=timeout, output_hook=collect)
        return "".join(out)

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@contextlib.contextmanager
def warm_kernels(deadline: float = 120) -> Iterator[dict[str, str]]:
    env = Course(REPO).environment()
    env["COURSEKIT_SUBMISSION_DEADLINE"] = str(deadline)
    with warm_environment(env) as warm, pytest.MonkeyPatch.context() as patch:
        patch.setenv(SOCKET_ENV, warm[SOCKET_ENV])
        patch.setenv("JUPYTER_PATH", warm["JUPYTER_PATH"])
        yield warm


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Course:
    """A course with a gradebook, two students' submissions, and a folder graded as nbgrader would."""
    course = copy_course(tmp_path_factory.mktemp("course"))
    (course.root / "gradebook.db").write_text("the gradebook")
    for student in ("victim", "attacker"):
        course.submit(student, course.release_notebook)
    work = course.autograded / "attacker" / ASSIGNMENT
    work.mkdir(parents=True)
    (work / "mine.txt").write_text("my own file")
    return course


@pytest.fixture(scope="module")
def warm() -> Iterator[dict[str, str]]:
    with warm_kernels() as env:
        yield env


@pytest.fixture(scope="module")
def kernel(course: Course, warm: dict[str, str]) -> Iterator[Kernel]:
    kernel = Kernel(course.autograded / "attacker" / ASSIGNMENT, warm)
    yield kernel
    kernel.close()


def owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None


def read(path: Path) -> str:
    return f"open({str(path)!r}).read()"


@pytest.mark.slow
def test_kernel_cannot_read_the_course_or_other_students(kernel: Kernel, course: Course) -> None:
    secrets = [course.source_notebook, course.root / "gradebook.db", REPO / "grader_tests" / "checks.py",
               course.submitted_notebook("victim"), REPO / "coursekit" / "cohort.py", Path("/root/.bashrc")]
    for path in secrets:
        assert path.exists()
        out = kernel.run(read(path))
        assert out.startswith(("FileNotFoundError", "PermissionError")), (path, out)


@pytest.mark.slow
def test_kernel_cannot_import_the_checks_but_has_its_libraries(kernel: Kernel) -> None:
    assert kernel.run("import grader_tests").startswith("ModuleNotFoundError")
    assert kernel.run("import grader_tests.checks").startswith("ModuleNotFoundError")
    assert kernel.run("import tensorflow as tf, matplotlib.pyplot as plt; print(float(tf.reduce_sum([1., 2.])))") \
        == "3.0\n"


@pytest.mark.slow
def test_kernel_writes_only_its_scratch_folder(kernel: Kernel, course: Course) -> None:
    assert kernel.run(f"print({read(Path('mine.txt'))})") == "my own file\n"  # its own files, copied in
    assert kernel.run("open('out.txt', 'w').write('x'); open('/tmp/t', 'w').write('y'); print('ok')") == "ok\n"
    for target in (course.root / "gradebook.db", course.root / "planted.py", REPO / "planted.py",
                   Path("/usr/planted"), Path(sys.prefix) / "planted.py", Path("/etc/planted")):
        out = kernel.run(f"open({str(target)!r}, 'w').write('x')")
        assert out.startswith(("FileNotFoundError", "PermissionError", "OSError")), (target, out)
        assert not target.exists() or target.read_text() != "x"
    assert not (course.autograded / "attacker" / ASSIGNMENT / "out.txt").exists()  # the copy, not the original


@pytest.mark.slow
def test_kernel_has_no_network(kernel: Kernel) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[object] = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    out = kernel.run(f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)")
    assert out.startswith(("ConnectionRefusedError", "OSError", "TimeoutError")), out
    assert kernel.run("import os; print(os.path.exists('/run/postgresql'))") == "False\n"
    time.sleep(0.2)
    assert not accepted
    server.close()


@pytest.mark.slow
def test_kernel_cannot_see_or_signal_other_processes(kernel: Kernel) -> None:
    out = kernel.run("import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()) == [os.getpid()])")
    assert out == "True\n"
    assert kernel.run(f"import os; os.kill({os.getpid()}, 0)").startswith(("PermissionError", "ProcessLookupError"))


@pytest.mark.slow
def test_a_huge_file_is_cut(kernel: Kernel) -> None:
    out = kernel.run("f = open('/tmp/big', 'wb')\nfor _ in range(200): f.write(b'x' * (1 << 20))")
    assert out.startswith("OSError: [Errno 27] File too large"), out
    assert kernel.run("import os; print(os.path.getsize('/tmp/big') <= 64 << 20)") == "True\n"


@pytest.mark.slow
def test_a_fork_bomb_is_contained(kernel: Kernel) -> None:
    out = kernel.run(
        "import os, time\n"
        "pids, error = [], None\n"
        "try:\n"
        "    for _ in range(5000):\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            time.sleep(60); os._exit(0)\n"
        "        pids.append(pid)\n"
        "except OSError as exc:\n"
        "    error = exc.errno\n"
        "for pid in pids:\n"
        "    os.kill(pid, 9); os.waitpid(pid, 0)\n"
        "print(len(pids), error)\n",
        timeout=120,
    )
    forked, error = out.split()
    assert int(forked) < sandbox.Limits().processes and error == "11", out  # EAGAIN


@pytest.mark.slow
def test_memory_past_the_limit_ends_that_kernel_only(course: Course, warm: dict[str, str], kernel: Kernel) -> None:
    hog = Kernel(course.autograded / "attacker" / ASSIGNMENT, warm)
    try:
        out = hog.run("x = b'x' * (3 << 30); print('allocated')", timeout=60)
    except Exception as exc:  # the kernel died mid-request: no reply
        out = repr(exc)
    assert "allocated" not in out
    time.sleep(1.5)
    assert not hog.manager.is_alive() or out.startswith("MemoryError"), out
    hog.close()
    assert kernel.run("print(6 * 7)") == "42\n"  # another student's kernel lives on


@pytest.mark.slow
def test_the_warm_parent_ends_a_submission_at_its_deadline(course: Course) -> None:
    with warm_kernels(deadline=4) as env:
        slow = Kernel(course.autograded / "attacker" / ASSIGNMENT, env)
        start = time.monotonic()
        slow.client.execute("import subprocess, time\nsubprocess.Popen(['sleep', '600'], start_new_session=True)\n"
                            "time.sleep(600)")
        while slow.manager.is_alive() and time.monotonic() - start < 30:
            time.sleep(0.2)
        assert not slow.manager.is_alive()
        assert time.monotonic() - start < 10
        # What GuardedExecute tells the student (coursekit/runaway.py).
        assert Path(slow.manager.provisioner.sockets, "ended").read_text() == "the submission ran past its 4 s limit"
        # The parent reaps it and ends what it left: the `sleep` that escaped its process group too.
        uid = sandbox.SANDBOX_UID_BASE + slow.manager.provisioner.pid
        for _ in range(50):
            left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and owner(p) == uid]
            if not left:
                break
            time.sleep(0.1)
        assert not left
        slow.close()


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("unshare"), reason="needs util-linux's unshare")
def test_grading_refuses_when_a_protection_is_missing(tmp_path: Path) -> None:
    # In a user namespace with no uid mapped, no further namespace can be made: no filesystem or network sandbox.
    course = copy_course(tmp_path)
    course.submit("student", course.release_notebook)
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
    result = subprocess.run(["unshare", "--user", sys.executable, "-m", "coursekit.cli", "grade"],
                            cwd=course.root, env=course.environment(), capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "network ✗" in result.stdout and "filesystem ✗" in result.stdout
    assert "refusing to run student code without: network, filesystem" in result.stderr
    assert "--allow-unsandboxed" in result.stderr
    assert not course.autograded.exists() or not any(course.autograded.iterdir())
