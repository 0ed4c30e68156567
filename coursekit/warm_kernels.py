"""Kernels that start in a fraction of a second: forked from a parent that already imported TensorFlow.

A plain kernel pays TensorFlow's import (about 5 s here) for every submission. A `Zygote` imports the
heavy libraries once and waits on a UNIX socket; for each kernel that jupyter_client starts,
`WarmProvisioner` asks it to fork a child that becomes an ipykernel on the connection file
jupyter_client wrote. Children share nothing after the fork, and each runs in its own session.

nbgrader's own Execute step uses these kernels unchanged: `warm_kernelspec` writes a `python3`
kernelspec naming this provisioner, and putting its folder first on JUPYTER_PATH makes every
notebook's `python3` kernel a warm one.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
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

PROVISIONER = "coursekit-warm"
SOCKET_ENV = "COURSEKIT_WARM_SOCKET"
# Imported once in the parent. Not pyplot: it would fix the backend before the kernel picks its own.
PRELOAD = ("numpy", "tensorflow", "matplotlib", "IPython", "ipykernel.kernelapp", "grader_observe.kernel")


class WarmKernelError(RuntimeError):
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


def _become_kernel(request: dict[str, Any]) -> None:
    """In the forked child: take the kernel's environment and folder, then run ipykernel. Never returns."""
    code = 1
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.environ.clear()
        os.environ.update(request["env"])
        cwd = request["cwd"]
        os.chdir(cwd)
        sys.path[0] = cwd  # as `python -m ipykernel_launcher` started in cwd would have it
        argv = request["argv"]
        start = argv.index("ipykernel_launcher") + 1 if "ipykernel_launcher" in argv else 1
        from ipykernel.kernelapp import IPKernelApp

        IPKernelApp.launch_instance(argv=argv[start:])
        code = 0
    finally:
        os._exit(code)


def _reap(*_: Any) -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def serve(socket_path: str) -> None:
    """The warm parent: preload, then fork one kernel per request until told to stop."""
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    signal.signal(signal.SIGCHLD, _reap)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(8)
    print("ready", flush=True)
    while True:
        try:
            conn, _ = listener.accept()
        except InterruptedError:
            continue
        with conn:
            request = _receive(conn)
            if request.get("stop"):
                return
            pid = os.fork()
            if pid == 0:
                listener.close()
                conn.close()
                _become_kernel(request)
            _send(conn, {"pid": pid})


class Zygote:
    """Start the warm parent in its own process; stop it on exit."""

    def __init__(self, env: dict[str, str]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="coursekit-warm-"))
        self.socket_path = str(self.folder / "fork.sock")
        self.env = env
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Zygote:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coursekit.warm_kernels", self.socket_path],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            raise WarmKernelError(f"the warm kernel parent did not start (exit code {self.process.wait()})")
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
        for path in self.folder.iterdir():
            path.unlink()
        self.folder.rmdir()


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
    with Zygote(env) as zygote, tempfile.TemporaryDirectory(prefix="coursekit-kernels-") as specs:
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

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        path = self.socket_path or os.environ.get(SOCKET_ENV, "")
        if not path:
            raise WarmKernelError(f"no warm kernel parent: set {SOCKET_ENV} (coursekit grade does, unless --cold)")
        env = kwargs.get("env") or dict(os.environ)
        cwd = str(kwargs.get("cwd") or os.getcwd())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(path)
                _send(conn, {"argv": cmd, "env": env, "cwd": cwd})
                pid = int(_receive(conn)["pid"])
        except OSError as exc:
            raise WarmKernelError(f"the warm kernel parent at {path} did not answer: {exc}") from exc
        self.process = ForkedKernelProcess(pid)
        self.pid = self.pgid = pid  # the child called setsid(): its own process group
        self.cwd = cwd
        return self.connection_info


if __name__ == "__main__":
    serve(sys.argv[1])
