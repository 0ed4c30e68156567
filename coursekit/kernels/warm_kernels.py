"""Kernels that start in a fraction of a second: forked from a parent that already imported TensorFlow.

A plain kernel pays TensorFlow's import (about 5 s here) for every submission. A `Zygote` imports the
heavy libraries once and waits on a UNIX socket; for each kernel that jupyter_client starts,
`WarmProvisioner` asks it to fork a child that becomes an ipykernel on the connection file
jupyter_client wrote. Children share nothing after the fork, and each runs in its own session, confined by
`coursekit.kernels.sandbox` before it runs any of the student's code (as pid 1 of a PID namespace of its own, with an
allow-listed environment): it binds unix sockets in a folder of its own (jupyter_client's `ipc` transport: it
has no network), which nbgrader's side moves out of its reach before connecting, and the parent kills it
when it outlives the per-submission deadline. No process of the grader opens a path a kernel can write.

nbgrader's own Execute step uses these kernels unchanged: `warm_kernelspec` writes a `python3`
kernelspec naming this provisioner, and putting its folder first on JUPYTER_PATH makes every
notebook's `python3` kernel a warm one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import LocalProvisioner
from traitlets import Unicode

from coursekit.course.directory import CourseError
from coursekit.kernels import probe_child, sandbox

PROVISIONER = "coursekit-warm"
REQUEST_PROBE = probe_child.REQUEST  # fork a probe child (coursekit/kernels/probe_child.py), not a kernel
SOCKET_ENV = "COURSEKIT_WARM_SOCKET"
# Imported once in the parent. Not pyplot, nor the inline backend: they hook into the kernel's shell when
# imported, and the shell exists only in the child. The rest of what the child would import on its first
# figure and while ipykernel starts (its debugger pulls in debugpy): about 0.4 s a kernel.
# font_manager loads the font list now: a sandboxed kernel cannot read the instructor's font cache.
# Never the checks: a kernel must not carry them in memory; only the observer (grader_observe).
PRELOAD = ("numpy", "tensorflow", "matplotlib", "matplotlib.font_manager", "matplotlib.figure",
           "matplotlib.backends.backend_agg", "IPython", "ipykernel.kernelapp", "ipykernel.ipkernel",
           "ipykernel.debugger", "sqlite3", "pydoc", "tornado.queues", "grader_observe.kernel")


def _warm_up_rendering() -> None:
    """Draw and save one small figure with Agg, in the parent: fonts and text layout are loaded once, not per kernel.

    No pyplot (see PRELOAD) and no thread: what the children inherit is caches only.
    """
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure()
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.scatter([0.0, 1.0], [1.0, 0.0], marker=".")
    axes.plot([0.0, 1.0], "r--")
    axes.legend(["a", "b"])
    axes.set_xlabel("w")
    axes.set_ylabel("Loss")
    figure.savefig(io.BytesIO(), format="png", bbox_inches="tight")


class WarmKernelError(CourseError):
    """The warm parent is missing or failed to fork; the message says what to do."""


# ---------------------------------------------------------------- the parent that forks kernels


MAX_MESSAGE = 1 << 20  # a request (argv, the allow-listed environment) or a reply: far less in practice
MAX_REASON = 500  # characters of why a kernel was stopped


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def _receive(conn: socket.socket, limit: int = MAX_MESSAGE) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise WarmKernelError("the warm kernel parent closed the connection")
        data += chunk
        if len(data) > limit:
            raise WarmKernelError(f"a message to or from the warm kernel parent is over {limit} bytes")
    return json.loads(data)


def _connection_file(argv: list[str]) -> tuple[int, bytes] | None:
    """Where ipykernel's `-f` is in `argv`, and the file's content, read from the grader's folder before confining."""
    if "-f" not in argv:
        return None
    index = argv.index("-f") + 1
    return index, Path(argv[index]).read_bytes()


def _own_connection_file(argv: list[str], connection: tuple[int, bytes] | None) -> list[str]:
    """The kernel reads (and may rewrite) its connection file: once confined, it writes its own copy, in its own
    scratch folder. No grader process ever writes to a folder the kernel can write to."""
    if connection is None:
        return argv
    index, content = connection
    fd, copy = tempfile.mkstemp(prefix="kernel-", suffix=".json")
    with os.fdopen(fd, "wb") as file:
        file.write(content)
    return [*argv[:index], copy, *argv[index + 1:]]


def _become_kernel(request: dict[str, Any], folder: Path, limits: sandbox.Limits, parent: int) -> None:
    """In the forked child: confine itself, take the kernel's environment and folder, then run ipykernel.

    Never returns. Any failure to confine ends the child before student code could run. `parent`: the warm
    parent, whose death ends this process (and so the kernel: see sandbox.confine).
    """
    code = 1
    try:
        sandbox.die_with_parent(parent, signal.SIGTERM)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        strict = not request["env"].get(sandbox.ALLOW_ENV)
        os.environ.clear()
        os.environ.update(sandbox.kernel_environment(request["env"]))
        cwd = request["cwd"]
        sockets = request.get("sockets", "")
        layout = sandbox.Layout(folder / "kernels" / str(os.getpid()), cwd, sockets)
        if sockets and sandbox.really_root():  # the kernel's own uid binds its sockets there
            os.chown(sockets, layout.uid, layout.uid, follow_symlinks=False)
        connection = _connection_file(request["argv"])
        report = sandbox.confine(layout, limits, strict=strict)
        if "filesystem" in report.held:
            os.environ["TMPDIR"] = "/tmp"  # the kernel's own scratch /tmp: the grader's TMPDIR is not in its view
        tempfile.tempdir = None  # the parent resolved (and cached) the grader's temp folder before the fork
        argv = _own_connection_file(request["argv"], connection)
        os.chdir(cwd)
        sys.path[0] = cwd  # as `python -m ipykernel_launcher` started in cwd would have it
        start = argv.index("ipykernel_launcher") + 1 if "ipykernel_launcher" in argv else 1
        from ipykernel.kernelapp import IPKernelApp

        IPKernelApp.launch_instance(argv=argv[start:])
        code = 0
    finally:
        os._exit(code)


class Kernels:
    """The parent's children: each ends by its deadline, and leaves nothing running behind it."""

    KEPT_REASONS = 256  # why the last kernels were stopped, for nbgrader's side to ask (`why`)

    def __init__(self, folder: Path, limits: sandbox.Limits) -> None:
        self.folder, self.limits = folder, limits
        self.deadlines: dict[int, float] = {}
        self.reasons: dict[int, str] = {}

    def started(self, pid: int) -> None:
        self.deadlines[pid] = time.monotonic() + self.limits.deadline
        self.reasons.pop(pid, None)  # a reused pid: the reason was another kernel's

    def why(self, pid: int) -> str:
        return self.reasons.get(pid, "")

    def tend(self) -> None:
        now = time.monotonic()
        for pid, deadline in list(self.deadlines.items()):
            if now > deadline:
                # Kept here, before the kill, for nbgrader's side to ask (coursekit/kernels/runaway.py).
                self.reasons[pid] = f"the submission ran past its {self.limits.deadline:g} s limit"
                while len(self.reasons) > self.KEPT_REASONS:
                    del self.reasons[next(iter(self.reasons))]
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                self.deadlines[pid] = float("inf")
        with contextlib.suppress(ChildProcessError):
            while (pid := os.waitpid(-1, os.WNOHANG)[0]):
                self._cleanup(pid)

    def _cleanup(self, pid: int) -> None:
        self.deadlines.pop(pid, None)
        if sandbox.really_root():
            sandbox.kill_uid(sandbox.SANDBOX_UID_BASE + pid)
        sandbox.remove_cgroups(f"coursekit-kernel-{pid}")
        shutil.rmtree(self.folder / "kernels" / str(pid), ignore_errors=True)

    def stop(self) -> None:
        for pid in list(self.deadlines):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self._cleanup(pid)


def serve(socket_path: str) -> None:
    """The warm parent: preload, say which protections hold, then fork one kernel per request until told to stop."""
    import importlib

    # Before the slow imports: a grader killed during them must still be noticed (getppid() would then
    # already name the process that adopted this one).
    grader = os.getppid()
    for module in PRELOAD:
        importlib.import_module(module)
    _warm_up_rendering()
    # What the parent holds now is the same in every child: out of the garbage collector's sight, so a
    # child's full collections do not walk (and copy, page by page) the whole of TensorFlow's objects.
    gc.collect()
    gc.freeze()
    limits = sandbox.Limits.from_env()
    report = sandbox.probe(limits)
    folder = Path(socket_path).parent
    kernels = Kernels(folder, limits)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(8)
    listener.settimeout(0.5)  # wakes to enforce deadlines and reap children
    print(f"ready {report.to_json()}", flush=True)
    try:
        while os.getppid() == grader:  # a grader killed with -9 takes its kernels with it
            kernels.tend()
            try:
                conn, _ = listener.accept()
            except (TimeoutError, InterruptedError):
                continue
            with conn:
                # Bounded: a client that stalls must not stop deadlines being enforced.
                conn.settimeout(10)
                try:
                    request = _receive(conn)
                except (OSError, ValueError, WarmKernelError):
                    continue
                if request.get("stop"):
                    return
                if "why" in request:  # why did kernel `why` end? Its reason travels on this socket, bounded
                    with contextlib.suppress(OSError):
                        _send(conn, {"reason": kernels.why(int(request["why"]))[:MAX_REASON]})
                    continue
                warm = os.getpid()
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    if REQUEST_PROBE in request:  # keeps the grader's connection: its only channel
                        probe_child.serve_child(conn, request[REQUEST_PROBE], folder, limits, warm)
                    conn.close()
                    _become_kernel(request, folder, limits, warm)
                kernels.started(pid)
                with contextlib.suppress(OSError):
                    _send(conn, {"pid": pid})
    finally:
        kernels.stop()
        if os.getppid() != grader:  # orphaned (grader or Dask worker killed): nobody else will remove the folder
            shutil.rmtree(folder, ignore_errors=True)


def _in_warm_folder(warm: Path, kind: str, kernel_id: str, mode: int = 0o777) -> Path:
    """warm/kind/kernel_id, made if need be (it exists on a restart), but never the warm parent's folder itself:
    an orphaned parent removes that folder as it ends, and an nbgrader orphaned with it that starts its next kernel
    must not make it again (left behind for good)."""
    folder = warm / kind / kernel_id
    try:
        folder.parent.mkdir(exist_ok=True)
        folder.mkdir(mode=mode, exist_ok=True)
    except FileNotFoundError as exc:
        raise WarmKernelError(f"the warm kernel parent is gone (its folder {warm} was removed)") from exc
    return folder


class Zygote:
    """Start the warm parent in its own process; stop it on exit."""

    def __init__(self, env: dict[str, str]) -> None:
        # Kernels' unix sockets live under this folder, and a socket path must fit in 107 bytes: a long
        # TMPDIR (pytest's, say) would not leave room for them.
        short = None if len(tempfile.gettempdir()) <= 24 else "/tmp"
        self.folder = Path(tempfile.mkdtemp(prefix="coursekit-warm-", dir=short))
        self.socket_path = str(self.folder / "fork.sock")
        self.env = env
        self.process: subprocess.Popen[str] | None = None
        self.report = sandbox.Report()

    def __enter__(self) -> Zygote:
        self.start()
        self.wait_ready()
        return self

    def start(self) -> None:
        """Start the parent; `wait_ready` for it."""
        # Its environment is the allow-listed one: a kernel forked from it can read the environment it was
        # started with (/proc/self/environ, its own memory), whatever the kernel's os.environ says.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coursekit.kernels.warm_kernels", self.socket_path],
            env=sandbox.kernel_environment(self.env, parent=True), stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )

    def wait_ready(self) -> None:
        """Until the parent has imported what kernels share and probed the sandbox (its report)."""
        assert self.process is not None and self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("ready "):
            self.process.kill()
            raise WarmKernelError(f"the warm kernel parent did not start (exit code {self.process.wait()})")
        self.report = sandbox.Report.from_json(line.removeprefix("ready "))

    def __exit__(self, *_: object) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError, WarmKernelError), socket.socket(socket.AF_UNIX) as conn:
                conn.connect(self.socket_path)
                _send(conn, {"stop": True})
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def warm_kernelspec(folder: Path) -> Path:
    """Write kernels/python3/kernel.json under `folder`: put `folder` first on JUPYTER_PATH to use it."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (warm)",
        "language": "python",
        "metadata": {"kernel_provisioner": {"provisioner_name": PROVISIONER}},
    }))
    return folder


@contextlib.contextmanager
def warm_environment(env: dict[str, str],
                     paths_known: Callable[[dict[str, str]], None] | None = None) -> Iterator[dict[str, str]]:
    """`env` for nbgrader with warm kernels: a running parent, and the kernelspec that uses it.

    `paths_known(env)`, if given, gets the same environment as soon as its paths are known, before the parent has
    imported TensorFlow and said which protections hold: enough to start an nbgrader that will ask it for kernels
    later (coursekit/engine/workers.py starts its executors meanwhile), never to run a kernel (the parent refuses
    any request before it is ready, and the caller waits for this context).
    """
    env = dict(env)
    # Matplotlib reads MPLBACKEND when it is imported, which now happens once, in the parent.
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # The kernelspec is not in the parent's folder, which an orphaned parent removes: an orphaned nbgrader
    # must keep finding a spec that names the (gone) parent and fail, not fall back to a plain, unsandboxed
    # python3 kernel.
    with tempfile.TemporaryDirectory(prefix="coursekit-kernels-") as specs:
        zygote = Zygote(env)
        env[SOCKET_ENV] = zygote.socket_path
        env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(warm_kernelspec(Path(specs))),
                                                            env.get("JUPYTER_PATH")]))
        zygote.start()
        try:
            if paths_known is not None:
                paths_known(dict(env))
            zygote.wait_ready()
            print(zygote.report.line(), flush=True)
            if zygote.report.missing and not env.get(sandbox.ALLOW_ENV):
                raise WarmKernelError(
                    f"refusing to run student code without: {', '.join(zygote.report.missing)}. Run as root or "
                    "where user namespaces are allowed, or pass --allow-unsandboxed to grade anyway "
                    "(docs/security.md)"
                )
            yield env
        finally:
            zygote.__exit__()


# ---------------------------------------------------------------- jupyter_client's side


class ForkedKernelProcess:
    """Enough of Popen for LocalProvisioner, for a process this one did not start."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stdin = self.stdout = self.stderr = None
        self._pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None

    def poll(self) -> int | None:
        if self.returncode is None:
            if self._pidfd is not None:
                ended = bool(select.select([self._pidfd], [], [], 0)[0])
            else:
                try:
                    os.kill(self.pid, 0)
                    ended = False
                except ProcessLookupError:
                    ended = True
            if ended:
                self.returncode = 0  # the warm parent reaps it; the exit code is not ours to read
                if self._pidfd is not None:
                    os.close(self._pidfd)
                    self._pidfd = None
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.02)
        return self.returncode or 0

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class WarmProvisioner(LocalProvisioner):  # type: ignore[misc]
    """Starts kernels by asking the warm parent to fork; everything else is LocalProvisioner's."""

    socket_path = Unicode("", config=True, help=f"the warm parent's socket (default: ${SOCKET_ENV})")
    sockets = Unicode("", help="this kernel's socket folder, bound into its sandbox")

    def _socket_path(self) -> str:
        path = self.socket_path or os.environ.get(SOCKET_ENV, "")
        if not path:
            raise WarmKernelError(f"no warm kernel parent: set {SOCKET_ENV} (coursekit grade does, unless --cold)")
        return path

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        # A sandboxed kernel has no network: unix sockets, in a folder of its own, the only one it can bind.
        km = self.parent
        if km is not None:
            folder = _in_warm_folder(Path(self._socket_path()).parent, "sockets", self.kernel_id)
            self.sockets = str(folder)
            km.transport, km.cache_ports, km.ip = "ipc", False, str(folder / "kernel")
        return await super().pre_launch(**kwargs)

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart)
        if self.sockets and not restart:
            # rmtree does not follow symlinks (shutil.rmtree.avoids_symlink_attacks): safe in the kernel's folder.
            shutil.rmtree(self.sockets, ignore_errors=True)
            shutil.rmtree(self._bound_folder(), ignore_errors=True)

    def _bound_folder(self) -> Path:
        return Path(self._socket_path()).parent / "bound" / self.kernel_id

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        path = self._socket_path()
        # Only the allow-listed environment is sent: the warm parent's memory, which every kernel forked from it
        # shares, never holds the grader's credentials.
        env = sandbox.kernel_environment(kwargs.get("env") or dict(os.environ))
        if os.environ.get(sandbox.ALLOW_ENV):
            env[sandbox.ALLOW_ENV] = os.environ[sandbox.ALLOW_ENV]
        cwd = str(kwargs.get("cwd") or os.getcwd())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(path)
                _send(conn, {"argv": cmd, "env": env, "cwd": cwd, "sockets": self.sockets})
                pid = int(_receive(conn)["pid"])
        except OSError as exc:
            raise WarmKernelError(f"the warm kernel parent at {path} did not answer: {exc}") from exc
        self.process = ForkedKernelProcess(pid)
        self.pid = self.pgid = pid  # the child called setsid(): its own process group
        self.cwd = cwd
        if await self._until_bound():
            self._take_sockets()
        return self.connection_info

    def _socket_files(self, ip: str) -> list[str]:
        km = self.parent
        return [f"{ip}-{port}" for port in
                (km.shell_port, km.iopub_port, km.stdin_port, km.control_port, km.hb_port)]

    async def _until_bound(self, timeout: float = 30) -> bool:
        """True once the kernel has bound its sockets; False if it died first, or after `timeout`.

        Returning at once saves a client that connects earlier being refused, retrying 100 ms later, and missing
        the kernel's first messages, which costs jupyter_client's start-up handshake another round (about 0.25 s a
        kernel, measured). lstat, never following a path the kernel may have planted.
        """
        km = self.parent
        if km is None or getattr(km, "transport", "") != "ipc" or not self.sockets:
            return False
        paths = self._socket_files(km.ip)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            if all(os.path.lexists(path) for path in paths):
                return True
            await asyncio.sleep(0.005)
        return False

    def _take_sockets(self) -> None:
        """Move the kernel's bound sockets into a folder only the grader can write, and connect there.

        In its own folder the kernel could swap a socket for a link to another one (another kernel's, the warm
        parent's, a database's) before nbgrader connects or reconnects. A rename moves the entry itself, never
        what a link points to; what arrived must then be a socket of the kernel's own uid. Then the folder is
        taken back: the kernel cannot write to the host's disk through it.
        """
        km = self.parent
        bound = _in_warm_folder(Path(self._socket_path()).parent, "bound", self.kernel_id, mode=0o700)
        target = str(bound / "kernel")
        uids = {sandbox.SANDBOX_UID_BASE + self.pid if sandbox.really_root() else os.geteuid()}
        if os.environ.get(sandbox.ALLOW_ENV):  # a kernel left without an identity of its own binds as the grader
            uids.add(os.geteuid())
        for old, new in zip(self._socket_files(km.ip), self._socket_files(target), strict=True):
            os.rename(old, new)
            info = os.lstat(new)
            if not stat.S_ISSOCK(info.st_mode) or info.st_uid not in uids:
                self.process.kill()
                raise WarmKernelError(f"kernel {self.kernel_id} did not bind its own socket at {old}")
        if sandbox.really_root():
            os.chown(self.sockets, os.geteuid(), os.getegid(), follow_symlinks=False)
            os.chmod(self.sockets, 0o755)
        km.ip = target
        self.connection_info = km.get_connection_info()

    def death_reason(self) -> str:
        """Why the warm parent stopped this kernel ('' when it did not): asked over its socket, bounded."""
        if not self.pid:
            return ""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(10)
                conn.connect(self._socket_path())
                _send(conn, {"why": self.pid})
                return str(_receive(conn, limit=4 * MAX_REASON)["reason"])[:MAX_REASON]
        except (OSError, ValueError, KeyError, WarmKernelError):
            return ""

    async def wait(self) -> int | None:
        # LocalProvisioner polls every 100 ms; a forked kernel's end is seen at once (pidfd), so look often.
        while self.process is not None and self.process.poll() is None:
            await asyncio.sleep(0.005)
        return await super().wait()


if __name__ == "__main__":
    serve(sys.argv[1])
