"""Temporal smoothing of per-frame predictions: none, a moving average of probabilities over k frames, or
hysteresis (the shown class changes only after another class has won k frames in a row)."""

from __future__ import annotations

import abc

import numpy as np

from socketedge.errors import ConfigError
from socketedge.registry import Registry


class Smoother(abc.ABC):
    def __init__(self, window: int):
        if window < 1:
            raise ConfigError(f"--window must be at least 1 frame, got {window}")
        self.window = window

    @abc.abstractmethod
    def update(self, probs: np.ndarray) -> tuple[int, np.ndarray]:
        """One frame's (C,) probabilities → (class index to show, probabilities to show)."""

    def reset(self) -> None:  # noqa: B027 - stateless smoothers need nothing
        pass


SMOOTHERS: Registry[type[Smoother]] = Registry("smoothing")


@SMOOTHERS.register("none")
class NoSmoothing(Smoother):
    def update(self, probs: np.ndarray) -> tuple[int, np.ndarray]:
        return int(probs.argmax()), probs


@SMOOTHERS.register("avg")
class MovingAverage(Smoother):
    """Mean of the last k probability vectors (a ring buffer and a running sum: O(C) per frame)."""

    def __init__(self, window: int):
        super().__init__(window)
        self._ring: np.ndarray | None = None
        self.reset()

    def reset(self) -> None:
        self._ring, self._sum, self._n, self._pos = None, None, 0, 0

    def update(self, probs: np.ndarray) -> tuple[int, np.ndarray]:
        p = probs.astype(np.float64)
        if self._ring is None:
            self._ring = np.zeros((self.window, p.shape[0]))
            self._sum = np.zeros(p.shape[0])
        if self._n == self.window:
            self._sum -= self._ring[self._pos]
        else:
            self._n += 1
        self._ring[self._pos] = p
        self._sum += p
        self._pos = (self._pos + 1) % self.window
        if self._pos == 0:  # re-sum once per window so float drift cannot accumulate over a long run
            self._sum = self._ring[: self._n].sum(0)
        mean = (self._sum / self._n).astype(np.float32)
        return int(mean.argmax()), mean


@SMOOTHERS.register("hysteresis")
class Hysteresis(Smoother):
    """Keep the shown class until a different class is the argmax for ``window`` consecutive frames."""

    def __init__(self, window: int):
        super().__init__(window)
        self.reset()

    def reset(self) -> None:
        self.current: int | None = None
        self._candidate: int | None = None
        self._streak = 0

    def update(self, probs: np.ndarray) -> tuple[int, np.ndarray]:
        raw = int(probs.argmax())
        if self.current is None or raw == self.current:
            self.current = raw if self.current is None else self.current
            self._candidate, self._streak = None, 0
        else:
            self._streak = self._streak + 1 if raw == self._candidate else 1
            self._candidate = raw
            if self._streak >= self.window:
                self.current, self._candidate, self._streak = raw, None, 0
        return self.current, probs


def make_smoother(name: str, window: int = 5) -> Smoother:
    return SMOOTHERS.get(name)(window)
