"""Camera profiles in calibration/ load and become source options; the device's calibration still wins."""

from __future__ import annotations

import pytest

from socketedge.capture.profiles import available_profiles, load_profile, with_profile
from socketedge.errors import ConfigError

EXPECTED = {"d415", "d435", "d435i", "d455", "l515", "azure_kinect"}


def test_every_profile_loads():
    profiles = available_profiles()
    assert EXPECTED <= set(profiles)
    for name in profiles:
        p = load_profile(name)
        lo, hi = p.depth_range
        assert 0 < lo < hi and 0 < p.depth_scale <= 0.001
        assert p.sdk in ("realsense", "k4a") and p.streams
    assert load_profile("l515").depth_scale == 0.00025


def test_source_options_and_overrides():
    opts = load_profile("d435").source_options()
    assert (opts["width"], opts["height"], opts["fps"]) == (848, 480, 30)
    assert opts["filters"] == "threshold,spatial,temporal" and opts["min_depth"] == 0.2
    assert opts["spatial_alpha"] == 0.5
    merged = with_profile({"profile": "d435", "fps": "15"})
    assert merged["fps"] == "15" and merged["width"] == 848
    k4a = load_profile("azure_kinect").source_options()
    assert k4a["color_resolution"] == "720P" and k4a["depth_mode"] == "NFOV_UNBINNED"


def test_profile_filters_reach_a_recording(recording):
    from socketedge.capture.base import open_source

    with open_source(f"file://{recording.path}?align=0", profile="d435") as src:
        assert src.info.extra["filters"] == ["threshold", "spatial", "temporal"]
        assert src.info.depth_scale == pytest.approx(recording.depth_scale)  # from the recording, not the profile
        assert src.read().depth.shape == (48, 64)


def test_unknown_and_broken_profiles(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="did you mean 'd435'"):
        load_profile("d43")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sensor: x\nsdk: realsense\nstreams: {}\ndepth_scale: 0.001\n")
    with pytest.raises(ConfigError, match="no 'depth_range'"):
        load_profile(bad)
    monkeypatch.setenv("SOCKETEDGE_CALIBRATION_DIR", str(tmp_path))
    (tmp_path / "mycam.yaml").write_text("sensor: m\nsdk: realsense\nstreams: {depth: {width: 320}}\n"
                                         "depth_scale: 0.001\ndepth_range: {min: 0.1, max: 2}\n")
    assert load_profile("mycam").source_options()["width"] == 320
