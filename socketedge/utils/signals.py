"""Process signals shared by the long-running commands (capture, run)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """`systemctl stop`, `docker stop` and `kill PID` send SIGTERM: inside this block it raises KeyboardInterrupt,
    so the command ends the way Ctrl-C ends it (camera released, files closed). Only the main thread can install a
    handler; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopFlag:
    """Ctrl-C (and SIGTERM with ``also_sigterm``) asks a loop to stop at its next boundary: the loop checks
    ``requested`` there, so no bookkeeping is ever cut in half by an exception. A second Ctrl-C raises
    KeyboardInterrupt at once, for a loop stuck waiting. ``message``, if given, is printed on the first signal.
    Only the main thread can install handlers; elsewhere the flag simply stays down."""

    def __init__(self, also_sigterm: bool = False, message: str | None = None):
        self.requested = False
        self._signals = (signal.SIGINT, signal.SIGTERM) if also_sigterm else (signal.SIGINT,)
        self._previous: dict = {}
        self._message = message

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self._signals}
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self.requested = True
        if self._message:
            from socketedge.utils.progress import console

            console.print(self._message)

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
