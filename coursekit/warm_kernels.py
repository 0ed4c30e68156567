"""Kernels that start in a fraction of a second: forked from a parent that already imported TensorFlow.

A plain kernel pays TensorFlow's import (about 5 s here) for every submission. A `Zygote` imports the
heavy libraries once and waits on a UNIX socket; for each kernel that jupyter_client starts,
`WarmProvisioner` asks it to fork a child that becomes an ipykernel on the connection file
jupyter_client wrote. Children share nothing after the fork, and each runs in its own session, confined by
`coursekit.sandbox` before it runs any of the student's code: it talks to nbgrader over unix sockets
in a folder of its own (jupyter_client's `ipc` transport: it has no network), and the parent kills it
when it outlives the per-submission deadline.

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
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import LocalProvisioner
from traitlets import Unicode

from . import probe_child, sandbox
from .course import CourseError

PROVISIONER = "coursekit-warm"
REQUEST_PROBE = probe_child.REQUEST  # fork a probe child (coursekit/probe_child.py), not a kernel
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


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def _receive(conn: socket.socket) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise WarmKernelError("the warm kernel parent closed the connection")
        data += chunk
    return json.loads(data)


def _own_connection_file(argv: list[str], sockets: str, uid: int | None) -> list[str]:
    """The kernel reads (and may rewrite) its connection file: give it a copy in its own socket folder.

    `uid`: the kernel's own uid (as root), which must own the folder to bind its sockets there.
    """
    if not sockets or "-f" not in argv:
        return argv
    index = argv.index("-f") + 1
    copy = Path(sockets) / "connection.json"
    shutil.copyfile(argv[index], copy)
    if uid is not None:
        os.chown(sockets, uid, uid)
        os.chown(copy, uid, uid)
    return [*argv[:index], str(copy), *argv[index + 1:]]


def _become_kernel(request: dict[str, Any], folder: Path, limits: sandbox.Limits) -> None:
    """In the forked child: confine itself, take the kernel's environment and folder, then run ipykernel.

    Never returns. Any failure to confine ends the child before student code could run.
    """
    code = 1
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.environ.clear()
        os.environ.update(request["env"])
        cwd = request["cwd"]
        sockets = request.get("sockets", "")
        layout = sandbox.Layout(folder / "kernels" / str(os.getpid()), cwd, sockets)
        argv = _own_connection_file(request["argv"], sockets, layout.uid if sandbox.really_root() else None)
        report = sandbox.confine(layout, limits, strict=not os.environ.get(sandbox.ALLOW_ENV))
        if "filesystem" in report.held:
            os.environ["TMPDIR"] = "/tmp"  # the kernel's own scratch /tmp: the grader's TMPDIR is not in its view
        tempfile.tempdir = None  # the parent resolved (and cached) the grader's temp folder before the fork
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

    def __init__(self, folder: Path, limits: sandbox.Limits) -> None:
        self.folder, self.limits = folder, limits
        self.deadlines: dict[int, float] = {}
        self.sockets: dict[int, str] = {}

    def started(self, pid: int, sockets: str) -> None:
        self.deadlines[pid] = time.monotonic() + self.limits.deadline
        self.sockets[pid] = sockets

    def tend(self) -> None:
        now = time.monotonic()
        for pid, deadline in list(self.deadlines.items()):
            if now > deadline:
                # Tell nbgrader's side why its kernel died (coursekit/runaway.py reads it).
                with contextlib.suppress(OSError):
                    Path(self.sockets[pid], "ended").write_text(
                        f"the submission ran past its {self.limits.deadline:g} s limit")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                self.deadlines[pid] = float("inf")
        with contextlib.suppress(ChildProcessError):
            while (pid := os.waitpid(-1, os.WNOHANG)[0]):
                self._cleanup(pid)

    def _cleanup(self, pid: int) -> None:
        self.deadlines.pop(pid, None)
        self.sockets.pop(pid, None)
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
                conn.settimeout(None)
                request = _receive(conn)
                if request.get("stop"):
                    return
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    if REQUEST_PROBE in request:  # keeps the grader's connection: its only channel
                        probe_child.serve_child(conn, request[REQUEST_PROBE], folder, limits)
                    conn.close()
                    _become_kernel(request, folder, limits)
                kernels.started(pid, request.get("sockets", "") or str(folder / "kernels" / str(pid)))
                _send(conn, {"pid": pid})
    finally:
        kernels.stop()
        if os.getppid() != grader:  # orphaned (grader or Dask worker killed): nobody else will remove the folder
            shutil.rmtree(folder, ignore_errors=True)


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
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coursekit.warm_kernels", self.socket_path],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("ready "):
            self.process.kill()
            raise WarmKernelError(f"the warm kernel parent did not start (exit code {self.process.wait()})")
        self.report = sandbox.Report.from_json(line.removeprefix("ready "))
        return self

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
def warm_environment(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """`env` for nbgrader with warm kernels: a running parent, and the kernelspec that uses it."""
    env = dict(env)
    # Matplotlib reads MPLBACKEND when it is imported, which now happens once, in the parent.
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # The kernelspec is not in the parent's folder, which an orphaned parent removes: an orphaned nbgrader
    # must keep finding a spec that names the (gone) parent and fail, not fall back to a plain, unsandboxed
    # python3 kernel.
    with Zygote(env) as zygote, tempfile.TemporaryDirectory(prefix="coursekit-kernels-") as specs:
        print(zygote.report.line(), flush=True)
        if zygote.report.missing and not env.get(sandbox.ALLOW_ENV):
            raise WarmKernelError(
                f"refusing to run student code without: {', '.join(zygote.report.missing)}. Run as root or where "
                "user namespaces are allowed, or pass --allow-unsandboxed to grade anyway (docs/security.md)"
            )
        env[SOCKET_ENV] = zygote.socket_path
        env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(warm_kernelspec(Path(specs))),
                                                            env.get("JUPYTER_PATH")]))
        yield env


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
            folder = Path(self._socket_path()).parent / "sockets" / self.kernel_id
            folder.mkdir(parents=True, exist_ok=True)
            self.sockets = str(folder)
            km.transport, km.cache_ports, km.ip = "ipc", False, str(folder / "kernel")
        return await super().pre_launch(**kwargs)

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart)
        if self.sockets and not restart:
            shutil.rmtree(self.sockets, ignore_errors=True)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        path = self._socket_path()
        env = kwargs.get("env") or dict(os.environ)
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
        await self._until_bound()
        return self.connection_info

    async def _until_bound(self, timeout: float = 30) -> None:
        """Return once the kernel has bound its sockets (or died, or `timeout`): a client that connects
        earlier is refused, retries 100 ms later, and misses the kernel's first messages, which costs
        jupyter_client's start-up handshake another round (about 0.25 s a kernel, measured)."""
        km = self.parent
        if km is None or getattr(km, "transport", "") != "ipc":
            return
        paths = [Path(f"{km.ip}-{port}") for port in
                 (km.shell_port, km.iopub_port, km.stdin_port, km.control_port, km.hb_port)]
        deadline = time.monotonic() + timeout
        while not all(path.exists() for path in paths) and time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return
            await asyncio.sleep(0.005)

    async def wait(self) -> int | None:
        # LocalProvisioner polls every 100 ms; a forked kernel's end is seen at once (pidfd), so look often.
        while self.process is not None and self.process.poll() is None:
            await asyncio.sleep(0.005)
        return await super().wait()


if __name__ == "__main__":
    serve(sys.argv[1])
