"""The capture and sessions commands through the real entry point."""

from __future__ import annotations

import json

from socketedge.data.session import load_session


def test_capture_then_info_and_validate(recording, tmp_path, cli):
    out = tmp_path / "s"
    r = cli("capture", f"file://{recording.path}", "--out", out, "--label", "cup", "--frames", "5")
    assert r.exit_code == 0, r.stderr
    assert "5 frames written" in r.stderr and "stopped: frames" in r.stderr
    r = cli("capture", f"file://{recording.path}", "--out", out, "--mode", "target", "--label", "bowl")
    assert r.exit_code == 0, r.stderr
    r = cli("sessions", "info", out, "--json")
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    n_bowl = info["per_label"]["bowl"]
    assert info["per_label"]["cup"] == 5 and n_bowl >= len(recording.depth) - 1
    assert info["per_modality"] == {"rgb": 5, "depth": 5 + n_bowl}
    assert info["serial"] == recording.serial and info["depth_intrinsics"]["width"] == 64
    r = cli("sessions", "info", out)
    assert r.exit_code == 0 and "cup" in r.stderr and "bowl" in r.stderr
    r = cli("sessions", "validate", out)
    assert r.exit_code == 0 and "is valid" in r.stdout


def test_validate_fails_with_one_line(recording, tmp_path, cli):
    out = tmp_path / "s"
    assert cli("capture", f"file://{recording.path}", "--out", out, "--frames", "2").exit_code == 0
    frame = load_session(out).frames[0]
    (out / frame.files["depth"]).write_bytes(b"\x89PNG broken")
    r = cli("sessions", "validate", out)
    assert r.exit_code == 1
    assert "problem(s)" in r.stderr and frame.files["depth"] in r.stderr


def test_user_mistakes_are_one_line(recording, tmp_path, cli):
    cases = [
        (("capture", "nosuch://x", "--out", tmp_path / "a"), "unknown frame source"),
        (("capture", f"file://{recording.path}", "--out", tmp_path / "b", "--mode", "both"), "--mode both"),
        (("capture", f"file://{tmp_path}/none.db3", "--out", tmp_path / "c"), "does not exist"),
        (("capture", f"file://{recording.path}", "--out", tmp_path / "d", "--record", tmp_path / "r.db3"),
         "realsense://"),
        (("sessions", "validate", tmp_path), "not a capture session"),
    ]
    for args, expected in cases:
        r = cli(*args)
        assert r.exit_code == 1, args
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("error:") and expected in r.stderr, (args, r.stderr)


def test_preview_without_gui_is_one_line(recording, tmp_path, cli):
    import re

    import cv2
    import pytest

    if not re.search(r"GUI:\s+NONE", cv2.getBuildInformation()):
        pytest.skip("this OpenCV build has GUI support; the headless error path cannot be shown")
    r = cli("capture", f"file://{recording.path}", "--out", tmp_path / "p", "--preview", "--frames", "1")
    assert r.exit_code == 1 and "--preview needs an OpenCV build with GUI" in r.stderr
