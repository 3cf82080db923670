"""A capture killed mid-way (SIGKILL: no cleanup at all) or interrupted (Ctrl-C) leaves a valid session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from socketedge.data.session import load_session
from socketedge.data.session_check import validate_session


def start_capture(rec: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "socketedge", "capture", f"file://{rec}", "--out", str(out),
                             "--label", "cup", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def wait_for_frames(proc: subprocess.Popen, out: Path, n: int, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    frames = out / "frames.jsonl"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"capture ended before it could be interrupted: {proc.stderr.read().decode()[-500:]}")
        if frames.is_file() and frames.read_bytes().count(b"\n") >= n:
            return n
        time.sleep(0.01)
    proc.kill()
    pytest.fail("capture wrote no frames in time")


def test_sigkill_mid_capture_leaves_a_valid_session(long_recording, tmp_path, cli):
    out = tmp_path / "killed"
    proc = start_capture(long_recording.path, out)
    wait_for_frames(proc, out, 15)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    session = load_session(out)
    total = len(long_recording.depth)
    assert 15 <= len(session.frames) < total
    result = cli("sessions", "validate", out)
    assert result.exit_code == 0, result.stderr
    assert f"{len(session.frames)} frames" in result.stdout
    report = validate_session(out)
    assert report.ok and report.frames == len(session.frames)
    assert any("interrupted" in w for w in report.warnings)  # the capture entry never got its end
    # the killed session can be appended to
    result = cli("capture", f"file://{long_recording.path}", "--out", out, "--label", "bowl", "--frames", "3")
    assert result.exit_code == 0, result.stderr
    after = load_session(out)
    assert len(after.frames) == len(session.frames) + 3 and validate_session(out).ok


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_closes_the_session(long_recording, tmp_path, sig):
    """Ctrl-C, and SIGTERM (`kill`, `docker stop`, `systemctl stop`), end a capture cleanly."""
    out = tmp_path / "interrupted"
    proc = start_capture(long_recording.path, out)
    wait_for_frames(proc, out, 10)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-800:]
    manifest = json.loads((out / "session.json").read_text())
    (entry,) = manifest["captures"]
    assert entry["stopped_by"] == "interrupted" and entry["ended"]
    report = validate_session(out)
    assert report.ok and report.frames == entry["frames"] >= 10
    assert not any("was interrupted" in w for w in report.warnings)  # (a half-written frame may be an orphan)
