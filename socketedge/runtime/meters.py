"""Latency percentiles and frame rate in constant memory, and the process's resident memory."""

from __future__ import annotations

import os
import random

import numpy as np


class LatencyMeter:
    """Exact count and mean; percentiles over a uniform reservoir of at most ``capacity`` samples, so a run of
    any length keeps the same memory (exact while the run is shorter than the reservoir)."""

    def __init__(self, capacity: int = 65536, seed: int = 0):
        self._samples = np.empty(capacity, np.float64)  # allocated once: memory does not grow with the run
        self._rng = random.Random(seed)
        self.count = 0
        self.total = 0.0

    def add(self, seconds: float) -> None:
        cap = len(self._samples)
        if self.count < cap:
            self._samples[self.count] = seconds
        else:  # Algorithm R: keep each of the n samples seen so far with probability cap / n
            j = self._rng.randrange(self.count + 1)
            if j < cap:
                self._samples[j] = seconds
        self.count += 1
        self.total += seconds

    @property
    def mean_ms(self) -> float:
        return 1000.0 * self.total / self.count if self.count else float("nan")

    def percentiles_ms(self, qs=(50, 95, 99)) -> dict[str, float]:
        n = min(self.count, len(self._samples))
        if n == 0:
            return {f"p{q}": float("nan") for q in qs}
        values = np.percentile(self._samples[:n], qs) * 1000.0
        return {f"p{q}": float(v) for q, v in zip(qs, values)}


class FpsMeter:
    """Frames per second over a sliding exponential window (what the overlay shows)."""

    def __init__(self, alpha: float = 0.1):
        self.alpha = alpha
        self._last: float | None = None
        self._interval: float | None = None

    def tick(self, now: float) -> float:
        if self._last is not None:
            dt = max(now - self._last, 1e-9)
            self._interval = dt if self._interval is None else (1 - self.alpha) * self._interval + self.alpha * dt
        self._last = now
        return self.fps

    @property
    def fps(self) -> float:
        return 1.0 / self._interval if self._interval else 0.0


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
