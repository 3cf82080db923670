"""Shared fixtures: tiny generated datasets in the real on-disk layouts, the CLI runner."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from socketedge.data.testing import write_dataset

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("COLUMNS", "200")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# A shell's background job (`./dev test &` without job control) starts with SIGINT ignored, and every process it
# starts inherits that: the tests that Ctrl-C a real `socketedge` process would then see it run on. A test run
# is interruptible by definition, so restore the default before any test starts a process.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True, scope="session")
def _frame_cache_dir(tmp_path_factory):
    """The disk cache of decoded frames in a temporary folder, never the user's ~/.cache (subprocesses too)."""
    from socketedge.data.disk_cache import CACHE_ENV

    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("frame-cache"))
    yield
    if old is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = old


@pytest.fixture
def make_dataset(tmp_path):
    def make(name: str = "data", classes=("a", "b", "c", "d"), per_class: int = 8, modalities=("rgb",), **kw):
        return write_dataset(tmp_path / name, list(classes), per_class, tuple(modalities), **kw)

    return make


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys):
    """Run ``socketedge ARGS`` in-process through the real entry point (error handling and exit codes included)."""

    def run(*args) -> CliResult:
        from socketedge.cli import main

        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run


@pytest.fixture
def no_plots(monkeypatch):
    """Skip adapt's matplotlib plots (seconds each; tests/adapt covers them) where a test compares numbers."""
    import socketedge.adapt.plots as plots

    monkeypatch.setattr(plots, "plot_history", lambda *a, **k: None)
    monkeypatch.setattr(plots, "plot_gap", lambda *a, **k: None)
