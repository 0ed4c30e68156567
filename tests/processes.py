"""The processes of one grading run, found by its own temp folder (other runs share this machine).

Warm parents and kernels carry the run's temp folder in their command line (the warm parent's socket), the
students' daemons in their name (tests/adversarial/catalog.py: `DAEMONS`); whatever a kernel starts runs under
the kernel's sandbox uid, which `Watcher` records while the run goes on.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from coursekit.kernels import sandbox

DAEMON = "coursekit-daemon:"


def processes(tmp: str) -> dict[int, tuple[int, str]]:
    """pid -> (uid, command line) of every process whose command line names `tmp`."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if tmp in cmdline:
                found[int(proc.name)] = (proc.stat().st_uid, cmdline)
        except OSError:
            continue
    return found


def by_uid(uids: set[int]) -> list[int]:
    left = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and proc.stat().st_uid in uids:
                left.append(int(proc.name))
        except OSError:
            continue
    return left


class Watcher:
    """Records the sandbox uids of this run's kernels while it runs: what they start is found by uid too."""

    def __init__(self, tmp: str) -> None:
        self.tmp, self.uids, self.daemons, self._stop = tmp, set[int](), 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            found = processes(self.tmp)
            self.uids |= {uid for uid, _ in found.values() if uid >= sandbox.SANDBOX_UID_BASE}
            self.daemons = max(self.daemons, sum(DAEMON in cmdline for _, cmdline in found.values()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def left(tmp: str, uids: set[int], seconds: float = 10) -> list[str]:
    """What of the run is still alive, waiting up to `seconds` for it to end."""
    deadline = time.monotonic() + seconds
    while True:
        found = [cmdline for _, cmdline in processes(tmp).values()] + [f"uid {pid}" for pid in by_uid(uids)]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)
