"""Session format: capture writes it, readers accept it wherever a paired or target folder goes, validate checks it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from socketedge.capture.base import open_source
from socketedge.capture.capture import CaptureConfig, capture
from socketedge.data.folders import paired_folder, session_images, session_pairs, target_folder
from socketedge.data.session import load_session
from socketedge.data.session_check import validate_session
from socketedge.data.imageio import read_image
from socketedge.errors import ConfigError, DataError


@pytest.fixture
def two_class_session(recording, tmp_path):
    out = tmp_path / "sess"
    a = capture(CaptureConfig(source=f"file://{recording.path}", out=out, label="cup", frames=4, options={"align": 0}))
    b = capture(CaptureConfig(source=f"file://{recording.path}", out=out, label="bowl", every=2,
                              options={"align": 0}))
    return out, a, b


def test_capture_writes_raw_depth_and_calibration(two_class_session, recording):
    out, a, b = two_class_session
    assert (a.written, a.stopped_by, a.capture_id) == (4, "frames", 0)
    assert b.capture_id == 1 and b.stopped_by == "end" and b.written == (b.seen + 1) // 2
    session = load_session(out)
    m = session.manifest
    assert m["format"] == "socketedge-session" and m["format_version"] == 1
    sensor = m["sensor"]
    assert sensor["serial"] == recording.serial and sensor["firmware"] == recording.firmware
    assert sensor["depth_scale"] == pytest.approx(recording.depth_scale)
    assert sensor["depth_intrinsics"]["width"] == 64 and sensor["color_intrinsics"]["width"] == 80
    assert sensor["depth_to_color"]["translation"][0] == pytest.approx(0.015)
    assert [c["ended"] is not None for c in m["captures"]] == [True, True]
    ids = [f.id for f in session.frames]
    assert ids == list(range(len(ids)))  # appending continues the ids
    for f in session.frames:
        depth = read_image(out / f.files["depth"], "depth")
        assert np.array_equal(depth, recording.depth[f.meta["depth_frame"]])  # 16-bit PNG, raw units
        assert np.array_equal(read_image(out / f.files["rgb"], "rgb"), recording.color[f.meta["color_frame"]])
        assert f.files["depth"].startswith(f"depth/{f.label}/")
    report = validate_session(out)
    assert report.ok and not report.warnings and report.per_label == {"bowl": b.written, "cup": 4}


def test_sessions_are_paired_and_target_folders(two_class_session):
    out, a, b = two_class_session
    pairs = paired_folder(out)
    assert pairs.modalities == ("rgb", "depth") and len(pairs) == a.written + b.written
    assert [i.key for i in pairs.a.items] == [i.key for i in pairs.b.items]
    assert pairs.a.class_names == ["bowl", "cup"]
    target = target_folder(out)
    assert target.modality == "depth" and target.class_names == ["bowl", "cup"]
    assert sorted({i.label for i in target.items}) == [0, 1]
    with pytest.raises(DataError, match="does not know"):
        session_images(out, "depth", class_names=["cup"])
    ordered = session_images(out, "depth", class_names=["cup", "bowl", "plate"])
    assert ordered.class_names == ["cup", "bowl", "plate"]
    with pytest.raises(DataError, match="no nir"):
        session_images(out, "nir")


def test_target_mode_and_unlabeled_frames(recording, tmp_path):
    out = tmp_path / "t"
    capture(CaptureConfig(source=f"file://{recording.path}", out=out, mode="target", frames=3))
    s = load_session(out)
    assert all(set(f.files) == {"depth"} for f in s.frames)
    assert target_folder(out).class_names is None
    with pytest.raises(DataError, match="have no label"):
        session_images(out, "depth", labels="required")
    with pytest.raises(DataError, match="no rgb frames"):
        session_pairs(out)


def test_session_replay_is_exact(two_class_session):
    out, *_ = two_class_session
    session = load_session(out)
    with open_source(f"session://{out}") as src:
        frames = list(src)
        assert src.info.serial == session.sensor["serial"]
    assert len(frames) == len(session.frames)
    for f, rec in zip(frames, session.frames):
        assert f.label == rec.label
        assert np.array_equal(f.depth, read_image(out / rec.files["depth"], "depth"))
    with open_source(f"session://{out}?label=cup") as src:
        assert {f.label for f in src} == {"cup"}


def test_torn_last_line_is_ignored_and_repaired_on_append(two_class_session, recording):
    out, *_ = two_class_session
    frames_file = out / "frames.jsonl"
    before = len(load_session(out).frames)
    with open(frames_file, "ab") as fh:
        fh.write(b'{"id": 999, "capture": 1, "files": {"depth": "dep')  # a write cut short
    s = load_session(out)
    assert s.torn_tail and len(s.frames) == before
    report = validate_session(out)
    assert report.ok and any("incomplete" in w for w in report.warnings)
    capture(CaptureConfig(source=f"file://{recording.path}", out=out, label="plate", frames=2))
    s = load_session(out)
    assert not s.torn_tail and len(s.frames) == before + 2 and validate_session(out).ok


def test_validate_finds_damage(two_class_session):
    out, *_ = two_class_session
    s = load_session(out)
    (out / s.frames[0].files["depth"]).write_bytes(b"not a png")
    (out / s.frames[1].files["rgb"]).unlink()
    lines = (out / "frames.jsonl").read_text().splitlines()
    rec = json.loads(lines[2])
    del rec["files"]["rgb"]
    lines[2] = json.dumps(rec)
    lines[3] = "garbage"
    (out / "frames.jsonl").write_text("\n".join(lines) + "\n")
    report = validate_session(out)
    text = "\n".join(report.errors)
    assert not report.ok
    assert "cannot decode" in text and "missing" in text and "incomplete: no rgb" in text and "line 4" in text
    assert any("not listed" in w for w in report.warnings)  # the orphaned rgb of the edited record


def test_bad_manifests(tmp_path):
    with pytest.raises(DataError, match="not a capture session"):
        load_session(tmp_path)
    (tmp_path / "session.json").write_text(json.dumps({"format": "socketedge-session", "format_version": 99}))
    with pytest.raises(DataError, match="upgrade socketedge"):
        load_session(tmp_path)
    (tmp_path / "session.json").write_text("{")
    with pytest.raises(DataError, match="unreadable"):
        load_session(tmp_path)


def test_capture_refuses_bad_input(recording, depth_only_recording, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not a capture session"):
        capture(CaptureConfig(source=f"file://{recording.path}", out=tmp_path / "other", frames=1))
    with pytest.raises(ConfigError, match="cannot be a folder name"):
        capture(CaptureConfig(source=f"file://{recording.path}", out=tmp_path / "x", label="a/b", frames=1))
    with pytest.raises(ConfigError, match="--mode target"):
        capture(CaptureConfig(source=f"file://{depth_only_recording.path}", out=tmp_path / "y", frames=1))
    with pytest.raises(ConfigError, match="needs a realsense://"):
        capture(CaptureConfig(source=f"file://{recording.path}", out=tmp_path / "z", record=tmp_path / "r.db3"))
    with pytest.raises(ConfigError, match="unknown camera profile"):
        capture(CaptureConfig(source=f"file://{recording.path}", out=tmp_path / "z", profile="d999"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "z").exists()


def test_jpeg_colour(recording, tmp_path):
    out = tmp_path / "j"
    capture(CaptureConfig(source=f"file://{recording.path}", out=out, frames=2, color_format="jpg"))
    s = load_session(out)
    assert all(f.files["rgb"].endswith(".jpg") for f in s.frames) and validate_session(out).ok


@pytest.mark.parametrize("workers", [0, 3])
def test_writer_lists_frames_in_id_order(tmp_path, workers):
    from socketedge.capture.base import Frame, SensorInfo
    from socketedge.capture.recorder import SessionWriter

    info = SensorInfo(sensor="test", modalities=("rgb", "depth"))
    rng = np.random.default_rng(0)
    frames = [Frame(i, i / 30, color=rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
                    depth=rng.integers(0, 65535, (16, 16), dtype=np.uint16)) for i in range(25)]
    with SessionWriter(tmp_path / "w", info, "test://", workers=workers) as w:
        for f in frames:
            w.write(f)
            f.depth[:] = 0  # a source reusing its buffer must not change what gets written
    s = load_session(tmp_path / "w")
    assert [f.id for f in s.frames] == list(range(25)) and s.manifest["captures"][0]["frames"] == 25
    for rec in s.frames:
        assert read_image(tmp_path / "w" / rec.files["depth"], "depth").any()
