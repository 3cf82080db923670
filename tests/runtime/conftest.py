"""Runtime fixtures (helpers live in runtime_fixtures.py, importable by name from the tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime_fixtures import ScriptedSource, write_contract_onnx


@pytest.fixture
def onnx_model(tmp_path) -> Path:
    return write_contract_onnx(tmp_path / "model.onnx")


@pytest.fixture
def scripted():
    """scripted(frames, **kw) → (factory, log): a fresh ScriptedSource per (re)open, sharing one log."""

    def make(frames, **kw):
        log: dict = {}
        return (lambda: ScriptedSource(frames, log, **kw)), log

    return make
