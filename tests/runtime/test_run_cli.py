"""`socketedge run` / `socketedge bench` through the real entry point: clean one-line failures, a real Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from runtime_fixtures import class_frames

from socketedge.data.imageio import write_image


@pytest.fixture
def depth_folder(tmp_path):
    for f in class_frames(6):
        write_image(tmp_path / "depth" / f.label / f"{f.index:03d}.png", f.depth)
    return tmp_path / "depth"


def _one_line_error(res, *needles):
    assert res.exit_code == 1
    err = res.stderr.strip().splitlines()[-1]  # info lines (the model's providers) may come first
    assert err.startswith("error:") and "Traceback" not in res.stderr, res.stderr
    for n in needles:
        assert n in " ".join(err.split()), err


def test_run_on_a_folder_writes_json_and_prints_a_summary(onnx_model, depth_folder, cli, tmp_path):
    out = tmp_path / "p.jsonl"
    res = cli("run", onnx_model, "--source", f"folder://{depth_folder}", "--json", out, "--headless")
    assert res.exit_code == 0, res.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["label"] for line in lines] == ["a", "a", "b", "b", "c", "d"]  # folder order: class, file
    assert res.stderr.count("latency") >= 6 + 1  # a console line per prediction, then the summary
    assert "CPUExecutionProvider" in res.stderr  # the providers the session really got
    assert "a: 2  b: 2  c: 1  d: 1" in res.stderr  # class histogram


def test_run_json_to_stdout_keeps_stdout_clean(onnx_model, depth_folder, cli):
    res = cli("run", onnx_model, "--source", f"folder://{depth_folder}", "--json", "-", "--max-frames", "4")
    assert res.exit_code == 0, res.stderr
    assert [json.loads(line)["frame"] for line in res.stdout.splitlines()] == [0, 1, 2, 3]
    assert "max frames" in res.stderr


def test_require_gpu_fails_cleanly(onnx_model, cli):
    res = cli("run", onnx_model, "--source", "synthetic://", "--require-gpu")
    _one_line_error(res, "--require-gpu", "socketedge[gpu]")


@pytest.mark.parametrize("args,needles", [
    (["--source", "synthetic://", "--camera"], ["either --camera"]),
    (["--source", "synthetic://", "--smooth", "median"], ["--smooth", "avg"]),
    (["--source", "synthetic://", "--window", "0"], ["--window"]),
    (["--source", "no/uri/here"], ["not a URI"]),
    (["--source", "webcam://0"], ["unknown frame source 'webcam'"]),
    (["--source", "synthetic://", "--provider", "npu"], ["unknown provider 'npu'"]),
    (["--source", "synthetic://", "--show"], ["--show needs a display"]),
])
def test_bad_options_are_one_line(onnx_model, cli, args, needles, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    _one_line_error(cli("run", onnx_model, *args), *needles)


def test_missing_model_and_no_camera(cli, tmp_path, onnx_model):
    _one_line_error(cli("run", tmp_path / "nope.onnx", "--source", "synthetic://"), "does not exist")
    pytest.importorskip("pyrealsense2", reason="the no-camera message comes from the RealSense source")
    import pyrealsense2 as rs

    if len(rs.context().query_devices()):
        pytest.skip("a RealSense camera is attached")
    _one_line_error(cli("run", onnx_model, "--camera"), "RealSense")


def test_bench_prints_the_table_and_writes_json(onnx_model, cli, tmp_path):
    out = tmp_path / "bench.json"
    res = cli("bench", onnx_model, "--backend", "onnxruntime-cpu", "--batch", "1,2", "--shape", "48x64",
              "--iters", "5", "--warmup", "1", "--loop-frames", "10", "--json", out)
    assert res.exit_code == 0, res.stderr
    report = json.loads(out.read_text())
    assert [r["batch"] for r in report["rows"]] == [1, 2] and report["overhead"][0]["frames"] == 10
    assert "median ms" in res.stderr and "overhead" in res.stderr
    _one_line_error(cli("bench", onnx_model, "--batch", "1,x"), "--batch")
    _one_line_error(cli("bench", onnx_model, "--shape", "big"), "--shape")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_ends_a_live_run_cleanly(onnx_model, tmp_path, sig):
    """A real signal to a real process on an endless camera: summary printed, exit 0, no traceback."""
    out = tmp_path / "live.jsonl"
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "socketedge", "run", str(onnx_model), "--source",
                             "synthetic://?size=32", "--json", str(out), "-q", "--headless"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 200):
            time.sleep(0.1)
            assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "interrupted" in err and "frames classified" in err
    assert all(json.loads(line) for line in out.read_text().splitlines())  # every line complete
