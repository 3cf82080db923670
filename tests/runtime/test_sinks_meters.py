"""Sinks (JSON lines, console, video, overlay), meters, and the bench library."""

from __future__ import annotations

import json

import numpy as np
import pytest
from runtime_fixtures import class_frames, contract_card, reference_probs

from socketedge.errors import ConfigError
from socketedge.runtime.backends import open_backend
from socketedge.runtime.loop import run_live
from socketedge.runtime.meters import FpsMeter, LatencyMeter, rss_bytes
from socketedge.runtime.sinks import ConsoleSink, JsonLinesSink, OverlayWindow, VideoSink, render_overlay


def test_json_lines_console_and_video_from_one_run(onnx_model, scripted, tmp_path, capsys):
    import cv2

    frames = class_frames(9)
    factory, _ = scripted(frames)
    out, video = tmp_path / "preds.jsonl", tmp_path / "out" / "annotated.avi"
    with open_backend(onnx_model) as b:
        s = run_live(b, factory, [ConsoleSink(), JsonLinesSink(out), VideoSink(video)])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == s.frames == 9
    for rec, frame in zip(lines, frames):
        assert rec["frame"] == frame.index and rec["label"] == frame.label == rec["raw_label"]
        np.testing.assert_allclose(rec["probs"], reference_probs(frame.depth), atol=1e-5)
        assert rec["score"] == pytest.approx(max(rec["probs"]))
        assert rec["latency_ms"] >= rec["infer_ms"] > 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 9 and err[0].split()[:3] == ["frame", "0", "a"] and "latency" in err[0]
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 9
    ok, image = cap.read()
    assert ok and image.shape[1] >= 480  # tiny frames are scaled up so the label stays legible


def test_json_to_stdout(onnx_model, scripted, capsys):
    factory, _ = scripted(class_frames(3))
    with open_backend(onnx_model) as b:
        run_live(b, factory, [JsonLinesSink("-")])
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["label"] for line in lines] == ["a", "b", "c"]


def test_overlay_shows_depth_colours_and_label():
    from socketedge.runtime.sinks import Prediction

    frame = class_frames(2)[1]
    frame.depth[0, :5] = 0
    pred = Prediction(frame=1, timestamp=0.0, class_index=1, label="b", score=0.9, probs=np.zeros(4),
                      raw_index=1, raw_probs=np.zeros(4), infer_ms=1.0, latency_ms=2.0, fps=30.0)
    image = render_overlay(frame, pred, contract_card(), min_width=40)
    assert image.shape == (40, 40, 3) and image.dtype == np.uint8
    assert (image[28:, :] != 0).any() and image[:28].max() == 255  # text drawn on the black bar
    from socketedge.runtime.sinks import colorize

    colours = colorize(frame, contract_card())
    box = colours[frame.depth == 1200][0]
    background = colours[(frame.depth > 2900)][0]
    assert not np.array_equal(box, background)
    assert (colours[0, :5] == 0).all()  # invalid depth is black


def test_show_without_a_display_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ConfigError, match="--show needs a display"):
        OverlayWindow()


def test_video_rejects_unknown_container(tmp_path):
    with pytest.raises(ConfigError, match="unsupported container"):
        VideoSink(tmp_path / "out.gif")


def test_latency_meter_exact_then_reservoir():
    m = LatencyMeter(capacity=1000)
    for v in range(1, 101):
        m.add(v / 1000.0)
    assert m.count == 100 and m.mean_ms == pytest.approx(50.5)
    assert m.percentiles_ms((50, 99)) == {"p50": pytest.approx(50.5), "p99": pytest.approx(99.01)}
    big = LatencyMeter(capacity=500)
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 0.1, 20000)
    for v in values:
        big.add(float(v))
    assert big.count == 20000 and big._samples.shape == (500,)  # memory fixed however long the run
    assert big.percentiles_ms((50,))["p50"] == pytest.approx(50.0, abs=8.0)
    assert np.isnan(LatencyMeter().percentiles_ms()["p50"])


def test_fps_meter_and_rss():
    f = FpsMeter(alpha=0.5)
    for i in range(20):
        f.tick(i / 25.0)
    assert f.fps == pytest.approx(25.0, rel=1e-6)
    assert rss_bytes() > 10 * 2**20


def test_bench_library_reports_rows_overhead_and_skips(onnx_model):
    from socketedge.runtime.bench import BenchConfig, bench

    report = bench(BenchConfig(models=[onnx_model], backends=["onnxruntime-cpu", "onnxruntime-cuda", "torch"],
                               batches=[1, 3], height=48, width=64, warmup=2, iters=5, loop_frames=20))
    import onnxruntime as ort

    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    assert [(r.backend, r.batch) for r in report.rows][:2] == [("onnxruntime-cpu", 1), ("onnxruntime-cpu", 3)]
    for r in report.rows:
        assert r.precision == "fp32" and r.median_ms > 0 and r.p99_ms >= r.median_ms
        assert r.frames_per_s == pytest.approx(1000 * r.batch / r.mean_ms)
    o = report.overhead[0]
    assert o.frames == 20 and o.model_ms > 0 and o.loop_ms > 0
    # inside each loop run the model's time is part of the wall time, so both medians order the same way
    assert 0 < o.in_loop_model_ms < o.loop_ms and o.in_loop_overhead_ms > 0
    assert o.own_p50_ms > 0 and o.infer_p50_ms > 0 and o.own_pct == pytest.approx(100 * o.own_p50_ms / o.infer_p50_ms,
                                                                                    rel=0.5)
    skipped = " | ".join(report.skipped)
    assert ("onnxruntime-cuda" in skipped) != has_cuda and "torch backend does not run" in skipped
