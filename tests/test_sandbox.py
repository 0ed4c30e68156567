"""The sandbox around warm kernels: real kernels forked from a real warm parent try what a hostile submission would."""

from __future__ import annotations

import contextlib
import os
import queue
import re
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

from coursekit import ASSIGNMENT
from coursekit.course.directory import Course
from coursekit.kernels import sandbox
from coursekit.kernels.warm_kernels import SOCKET_ENV, warm_environment

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
    assert {"filesystem", "network", "memory", "processes", "cpu", "file size", "deadline", "pid namespace"} \
        <= set(report.held)


NOBODY_PROBE = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from coursekit.kernels import sandbox
print(sandbox.probe(sandbox.Limits()).to_json())
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not os.access("/usr/bin/python3", os.X_OK),
                    reason="needs root to become nobody, setpriv and the system Python")
def test_without_root_a_user_namespace_gives_the_same_protections() -> None:
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    sandbox_source = REPO / "coursekit" / "kernels" / "sandbox.py"
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


def _printed(msg: dict) -> str:
    """What an iopub message shows as text: a stream's text, or an error's name and value."""
    content = msg["content"]
    if msg["msg_type"] == "stream":
        return content["text"]
    if msg["msg_type"] == "error":
        return f"{content['ename']}: {content['evalue']}"
    return ""


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
        self.client.execute_interactive(code, timeout=timeout, output_hook=lambda msg: out.append(_printed(msg)))
        return "".join(out)

    def run_or_die(self, code: str, timeout: float = 60) -> str | None:
        """What the code printed, or None as soon as its kernel is dead (a dead kernel never replies: `run` would
        wait out its whole timeout)."""
        msg_id, out = self.client.execute(code), []
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.manager.is_alive():
            try:
                msg = self.client.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
            out.append(_printed(msg))
        if self.manager.is_alive():
            raise TimeoutError(f"no reply in {timeout} s, and the kernel lives: {''.join(out)}")
        return None

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


# Planted in the grader's environment: no kernel may see them, in any form.
SECRETS = {"PGPASSWORD": "planted-pg-password-4711", "AWS_SECRET_ACCESS_KEY": "planted-aws-key-0815",
           "COURSEKIT_DB_URL": "postgresql://grader:planted-db-password-1234@db/course"}


@contextlib.contextmanager
def warm_kernels(deadline: float = 120) -> Iterator[dict[str, str]]:
    env = {**Course(REPO).environment(), **SECRETS}
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
               course.submitted_notebook("victim"), REPO / "coursekit" / "course" / "cohort.py", Path("/root/.bashrc")]
    for path in secrets:
        assert path.exists()
        out = kernel.run(read(path))
        assert out.startswith(("FileNotFoundError", "PermissionError")), (path, out)


@pytest.mark.slow
def test_kernel_cannot_import_the_checks_but_has_its_libraries(kernel: Kernel) -> None:
    assert kernel.run("import grader_tests").startswith("ModuleNotFoundError")
    assert kernel.run("import grader_tests.checks").startswith("ModuleNotFoundError")
    out = kernel.run("import tensorflow as tf, matplotlib.pyplot as plt; print(float(tf.reduce_sum([1., 2.])))")
    # TensorFlow's own C++ log lines (a failed cuInit where CUDA's libraries exist but no GPU) are not the point here.
    assert [line for line in out.splitlines() if not re.match(r"[IWEF]\d{4} ", line)] == ["3.0"], out


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
    out = hog.run_or_die("x = b'x' * (3 << 30); print('allocated')", timeout=60)
    assert out is None or out.startswith("MemoryError"), out  # killed, or refused the memory
    hog.close()
    assert kernel.run("print(6 * 7)") == "42\n"  # another student's kernel lives on


@pytest.mark.slow
def test_the_warm_parent_ends_a_submission_at_its_deadline(course: Course) -> None:
    with warm_kernels(deadline=4) as env:
        slow = Kernel(course.autograded / "attacker" / ASSIGNMENT, env)
        # A link named `ended` to a file of the grader's: before, the warm parent wrote its reason through it.
        victim = course.root / "victim.txt"
        victim.write_text("the grader's file")
        slow.run(f"import os\ntry:\n    os.symlink({str(victim)!r}, {slow.manager.provisioner.sockets!r} + '/ended')\n"
                 "except OSError:\n    pass\n")
        ended = Path(slow.manager.provisioner.sockets, "ended")
        if not ended.is_symlink():  # the folder is the grader's again: plant it as one planted before that would be
            ended.symlink_to(victim)
        start = time.monotonic()
        slow.client.execute("import subprocess, time\nsubprocess.Popen(['sleep', '600'], start_new_session=True)\n"
                            "time.sleep(600)")
        while slow.manager.is_alive() and time.monotonic() - start < 30:
            time.sleep(0.2)
        assert not slow.manager.is_alive()
        assert time.monotonic() - start < 10
        # What GuardedExecute tells the student (coursekit/kernels/runaway.py): asked of the warm parent.
        assert slow.manager.provisioner.death_reason() == "the submission ran past its 4 s limit"
        assert victim.read_text() == "the grader's file"
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
    assert "network ✗" in result.stdout and "filesystem ✗" in result.stdout and "pid namespace ✗" in result.stdout
    assert "refusing to run student code without: pid namespace, network, filesystem" in result.stderr
    assert "--allow-unsandboxed" in result.stderr
    assert not course.autograded.exists() or not any(course.autograded.iterdir())


# ---------------------------------------------------------------- kernels branch: paths, environment, lifetime


def test_the_kernel_environment_is_an_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**SECRETS, "PATH": "/usr/bin", "MPLBACKEND": "agg", "HOME": "/root", "COURSEKIT_SANDBOX_MEMORY_MB": "512",
           "COURSEKIT_DB_URL_FILE": "x", "MY_FLAG": "1", sandbox.EXTRA_ENV: "MY_FLAG"}
    assert sandbox.kernel_environment(env) == {"PATH": "/usr/bin", "MPLBACKEND": "agg", "MY_FLAG": "1"}
    parent = sandbox.kernel_environment(env, parent=True)
    assert parent["COURSEKIT_SANDBOX_MEMORY_MB"] == "512" and not set(SECRETS) & set(parent)


SEARCH_SECRETS = """
import os, re
found = set()
for text in (repr(dict(os.environ)), *(open(f'/proc/{p}/environ', 'rb').read().decode(errors='replace')
                                       for p in ('self', '1') if os.path.exists(f'/proc/{p}/environ'))):
    found |= {s for s in SECRETS if s in text}
# The kernel's own memory: the environment it was started with sits on its stack; the heap holds what it was sent.
with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb') as mem:
    for line in maps:
        if line.rstrip().endswith(('[stack]', '[heap]')):
            start, end = (int(x, 16) for x in line.split()[0].split('-'))
            for offset in range(start, end, 1 << 24):
                mem.seek(offset)
                chunk = mem.read(min((1 << 24) + 256, end - offset))
                found |= {s for s in SECRETS if s.encode() in chunk}
print(sorted(found), os.getpid())
"""


@pytest.mark.slow
def test_the_kernel_sees_no_secret_of_the_grader(kernel: Kernel) -> None:
    # Reversed: the cell's own source must not hold what it looks for.
    # Reads the kernel's whole stack and heap (TensorFlow's included): seconds when idle, a minute or more on a
    # loaded machine, as the kernel has one core's share.
    out = kernel.run(f"SECRETS = [s[::-1] for s in {[v[::-1] for v in SECRETS.values()]!r}]\n" + SEARCH_SECRETS,
                     timeout=300)
    assert out == "[] 1\n", out  # and it is pid 1 of its own namespace


@pytest.mark.slow
def test_the_kernel_cannot_write_its_socket_folder_once_connected(kernel: Kernel) -> None:
    """Its sockets were moved where only the grader writes; the folder it bound them in is the grader's again."""
    folder = Path(kernel.manager.provisioner.sockets)
    assert not Path(kernel.manager.ip).is_relative_to(folder)
    out = kernel.run(f"import os\nfor name in ('ended', 'kernel-1'):\n"
                     f"    try:\n        os.symlink('/etc/passwd', {str(folder)!r} + '/' + name)\n"
                     f"    except OSError as exc:\n        print(type(exc).__name__)\n")
    assert out == "PermissionError\nPermissionError\n", out
    assert kernel.run("print(6 * 7)") == "42\n"


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _until_gone(marker: str, seconds: float = 5) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := _processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


ESCAPE = """
import os, subprocess, sys
marker = {marker!r}
subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', marker], start_new_session=True)
if os.fork() == 0:  # a double fork, setsid in between: a daemon
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(600)', marker])
    os._exit(0)
os.wait()
import ctypes
ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)  # no parent-death signal for the kernel itself either
print('started')
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["shutdown", "kill the supervisor", "kill the warm parent"])
def test_nothing_a_kernel_started_outlives_it(course: Course, how: str) -> None:
    marker = f"coursekit-escape-{os.getpid()}-{how.replace(' ', '-')}"
    with warm_kernels() as env:
        kernel = Kernel(course.autograded / "attacker" / ASSIGNMENT, env)
        assert kernel.run(ESCAPE.format(marker=marker)) == "started\n"
        deadline = time.monotonic() + 10
        while len(_processes_with(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_processes_with(marker)) == 2
        supervisor = kernel.manager.provisioner.pid
        if how == "shutdown":
            kernel.close()
        elif how == "kill the supervisor":
            os.kill(supervisor, 9)
        else:
            warm_parent = int(Path(f"/proc/{supervisor}/stat").read_text().rsplit(")", 1)[1].split()[1])
            os.kill(warm_parent, 9)
        assert not _until_gone(marker), how
        deadline = time.monotonic() + 5
        while _alive(supervisor) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(supervisor)
        if how != "shutdown":
            kernel.client.stop_channels()
            with contextlib.suppress(Exception):
                kernel.manager.shutdown_kernel(now=True)
