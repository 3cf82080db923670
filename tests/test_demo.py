"""`socketedge demo --quick` end to end: data → source → SHOT / SOCKET → ONNX → live loop → table."""

import json


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
