"""benchmarks/reproduce.py end to end on tiny released-layout fixtures (tiny_cnn, 1 epoch)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = ["--arch", "tiny_cnn", "--no-pretrained", "--source-epochs", "1", "--adapt-epochs", "1",
        "--batch-size", "8", "--device", "cpu", "--quiet"]


def _load():
    spec = importlib.util.spec_from_file_location("reproduce_benchmark", REPO / "benchmarks" / "reproduce.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the script executes
    spec.loader.exec_module(mod)
    return mod


def _row(text: str, table_heading: str, method: str) -> list[str]:
    section = text.split(table_heading, 1)[1].split("\n## ", 1)[0]
    line = next(ln for ln in section.splitlines() if ln.startswith(f"| {method}"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_rgbnir_table_and_cache(rgbnir_release, tmp_path, monkeypatch):
    reproduce = _load()
    root, _ = rgbnir_release(per_class=4, orphan=False)
    work = tmp_path / "work"
    args = ["--dataset", "rgbnir", "--root", str(root), "--work", str(work), "--seeds", "0,1", *TINY,
            "--import-option", "ti_classes=indoor,urban,water"]
    text = reproduce.main(args)

    assert "Table 6 — RGB-NIR Scene" in text
    assert "task-irrelevant classes (3): indoor, urban, water" in text
    for method in ("Unadapted (source only)", "SHOT", "SOCKET"):
        cells = _row(text, "Table 6", method)
        mean, std = map(float, re.fullmatch(r"([\d.]+) ± ([\d.]+)", cells[1]).groups())
        assert 0 <= mean <= 100 and std >= 0
        assert cells[2] == "n/c"  # the paper's number: not confirmed, never invented
    results = json.loads((work / "results.json").read_text())["runs"]
    assert set(results) == {f"single/nirscene/{m}/seed{s}" for m in ("unadapted", "shot", "socket") for s in (0, 1)}
    assert all(r["n"] == 24 for r in results.values())  # 6 task classes × 4 target images
    assert (work / "adapted" / "single" / "nirscene" / "socket-seed1" / "bundle.json").is_file()
    assert (work / "results.md").read_text().strip() == text.strip()

    # a second run reads every cell from the cache: no training, no adaptation
    import socketedge.adapt.run
    import socketedge.models.train

    def boom(*a, **k):
        raise AssertionError("should have been cached")

    import socketedge.data.importers

    monkeypatch.setattr(socketedge.data.importers, "import_dataset", boom)
    monkeypatch.setattr(socketedge.adapt.run, "adapt", boom)
    monkeypatch.setattr(socketedge.models.train, "train_source", boom)
    again = reproduce.main(args)
    assert _row(again, "Table 6", "SOCKET") == _row(text, "Table 6", "SOCKET")

    # the paper column comes from --paper-numbers; a wrong key fails before any work
    numbers = tmp_path / "paper.json"
    numbers.write_text(json.dumps({"rgbnir": {"single": {"socket": {"nirscene": 42.5}}}}))
    filled = reproduce.main(args + ["--paper-numbers", str(numbers)])
    assert _row(filled, "Table 6", "SOCKET")[2] == "42.5" and _row(filled, "Table 6", "SHOT")[2] == "n/c"
    numbers.write_text(json.dumps({"rgbnir": {"single": {"sokcet": {"nirscene": 42.5}}}}))
    from socketedge.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown key 'rgbnir.single.sokcet'"):
        reproduce.main(args + ["--paper-numbers", str(numbers)])


@pytest.mark.slow
def test_sunrgbd_single_and_multi_source(sunrgbd_release, tmp_path):
    reproduce = _load()
    layout = {s: {"bedroom": 4, "office": 4, "kitchen": 2} for s in ("kv1", "kv2", "realsense", "xtion")}
    root, _ = sunrgbd_release(layout)
    imported = tmp_path / "sun"
    from socketedge.data.importers import import_dataset

    import_dataset("sunrgbd", root, imported, task_classes=["bedroom", "office"], show_progress=False)
    text = reproduce.main(["--dataset", "sunrgbd", "--root", str(imported), "--work", str(tmp_path / "w"),
                           "--seeds", "0", "--one-source", *TINY])
    assert "Table 3 — SUN RGB-D, single source" in text and "Table 4 — SUN RGB-D, multi-source" in text
    cells = _row(text, "Table 4", "DECISION")
    assert len(cells) == 1 + 4 * 2 + 2  # method, (ours, paper) per sensor, avg ours, avg paper
    assert all(re.fullmatch(r"[\d.]+ ± 0\.0", c) for c in cells[1:9:2])
    assert cells[2:10:2] == ["n/c"] * 4
    runs = json.loads((tmp_path / "w" / "results.json").read_text())["runs"]
    assert len(runs["multi/xtion/socket/seed0"]["sources"]) == 3
    assert len(list((tmp_path / "w" / "sources").glob("*.ckpt"))) == 4  # one per sensor, shared by both tables


def test_bad_import_option(rgbnir_release, tmp_path):
    reproduce = _load()
    root, _ = rgbnir_release(per_class=1, orphan=False)
    from socketedge.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown class 'beach'"):
        reproduce.main(["--dataset", "rgbnir", "--root", str(root), "--work", str(tmp_path / "w"), *TINY,
                        "--import-option", "task_classes=beach,field"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        reproduce.main(["--dataset", "rgbnir", "--root", str(root), "--work", str(tmp_path / "w"), *TINY,
                        "--import-option", "seed"])
