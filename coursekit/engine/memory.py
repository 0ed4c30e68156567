"""Memory of a process tree over time, sampled in a thread: for `make bench`'s flat-memory check.

Forked kernels share most of their pages with the warm parent, so adding up RSS would count TensorFlow
once per kernel. PSS (proportional set size) splits each shared page among the processes that map it,
so the sum over the tree is what the tree really costs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass
class Sample:
    seconds: float
    total_pss_mib: float
    largest_rss_mib: float
    processes: int


@dataclass
class MemorySampler:
    interval: float = 2.0
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.monotonic()

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(self.interval):
            pss = rss = 0.0
            count = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    info = process.memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                pss += info.pss
                rss = max(rss, info.rss)
                count += 1
            self.samples.append(Sample(time.monotonic() - self._start, pss / 2**20, rss / 2**20, count))

    def peaks_by_tenth(self) -> list[float]:
        """The highest total PSS (MiB) in each tenth of the run."""
        tenths: list[float] = [0.0] * 10
        end = self.samples[-1].seconds if self.samples else 1.0
        for sample in self.samples:
            index = min(9, int(sample.seconds / end * 10))
            tenths[index] = max(tenths[index], sample.total_pss_mib)
        return tenths

    def is_flat(self, tolerance: float = 0.10) -> bool:
        """No growth: the second half's peak is within `tolerance` of the first half's (start-up excluded)."""
        tenths = self.peaks_by_tenth()
        return max(tenths[5:]) <= max(tenths[1:5]) * (1 + tolerance)

    def plot(self, path: Path, title: str) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(8, 4))
        seconds = [s.seconds for s in self.samples]
        axes.plot(seconds, [s.total_pss_mib for s in self.samples], label="whole process tree (PSS)")
        axes.plot(seconds, [s.largest_rss_mib for s in self.samples], label="largest single process (RSS)")
        axes.set_xlabel("seconds into the run")
        axes.set_ylabel("MiB")
        axes.set_ylim(bottom=0)
        axes.set_title(title)
        axes.legend()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
