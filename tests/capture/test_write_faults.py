"""Regressions of issue 13: a full disk during capture, and a damaged frames.jsonl, never lose intact frames."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from socketedge.data.session import load_session
from socketedge.data.session_check import validate_session
from socketedge.utils.atomic import write_bytes_atomic

SOURCE = "synthetic://?size=96&seed=3"


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 300 KB tmpfs: fills after a few frames. Needs root (mount); skipped with the reason elsewhere."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill the disk needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_disk_full_during_capture_keeps_every_completed_frame(small_tmpfs, cli):
    """Regression (item 2): on a full disk the encoder reported success for a truncated 4 KB PNG, which was
    listed. Now the write is checked before the rename, and the capture stops with one line."""
    out = small_tmpfs / "session"
    r = cli("capture", SOURCE, "--out", out, "--frames", "500")
    assert r.exit_code == 1, r.stderr
    lines = [line for line in (r.stdout + r.stderr).strip().splitlines() if line.strip()]
    assert len(lines) <= 2 and "No space left on device" in lines[-1] and "Traceback" not in r.stderr, lines
    session = load_session(out)
    assert 0 < len(session.frames) < 500
    report = validate_session(out)  # every listed frame decodes: nothing truncated was committed
    assert report.ok, report.errors
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]  # no temporary left to fill the disk
    (entry,) = session.manifest["captures"]
    assert entry["stopped_by"] == "write_error" and entry["frames"] == len(session.frames)
    assert f"keeps the {len(session.frames)} frames" in lines[-1]


def test_full_disk_never_replaces_a_file_with_a_partial_one(small_tmpfs):
    target = small_tmpfs / "model.bin"
    write_bytes_atomic(target, b"good" * 1000)
    with pytest.raises(OSError) as e:
        write_bytes_atomic(target, os.urandom(400_000))  # larger than the whole tmpfs
    assert e.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"good" * 1000
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["model.bin"]


def test_truncated_frames_jsonl_is_reported_and_never_overwritten(tmp_path, cli):
    """Regression (item 3): with frames.jsonl cut in half, validation said "valid: 10 frames" and the next
    capture re-used ids 10–14, overwriting intact frames."""
    out = tmp_path / "s"
    for n, label in ((8, "a"), (7, "b"), (5, "c")):
        r = cli("capture", SOURCE, "--out", out, "--frames", n, "--label", label)
        assert r.exit_code == 0, r.stderr
    assert validate_session(out).ok and validate_session(out).frames == 20
    frames_file = out / "frames.jsonl"
    data = frames_file.read_bytes()
    frames_file.write_bytes(data[: len(data) // 2])
    report = validate_session(out)
    assert not report.ok
    assert any("frame record(s) lost" in e for e in report.errors), report.errors
    r = cli("sessions", "validate", out)
    assert r.exit_code == 1 and "lost" in r.stderr
    before = digests(out)
    before.pop("frames.jsonl"), before.pop("session.json")
    r = cli("capture", SOURCE, "--out", out, "--frames", 5, "--label", "d")
    assert r.exit_code == 0, r.stderr
    after = digests(out)
    assert {k: after.get(k) for k in before} == before  # every earlier frame file intact
    new = [f for f in load_session(out).frames if f.label == "d"]
    assert len(new) == 5 and min(f.id for f in new) >= 20
