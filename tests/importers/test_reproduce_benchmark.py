"""benchmarks/reproduce.py end to end on tiny released-layout fixtures (tiny_cnn, 1 epoch): every table in the
paper's shape with the paper's shipped numbers beside ours, the cache, --tables and --paper-numbers."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = ["--arch", "tiny_cnn", "--no-pretrained", "--source-epochs", "1", "--source-min-steps", "0",
        "--adapt-epochs", "1", "--batch-size", "8", "--device", "cpu", "--quiet"]
CELL = re.compile(r"([\d.]+) ± ([\d.]+) / ([\d.]+|n/c)")


def _load():
    spec = importlib.util.spec_from_file_location("reproduce_benchmark", REPO / "benchmarks" / "reproduce.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the script executes
    spec.loader.exec_module(mod)
    return mod


def table(text: str, heading: str) -> dict[str, dict[str, str]]:
    """{row label: {column: cell}} of the markdown table under the heading that starts with ``heading``."""
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    cols = [c.strip() for c in lines[0].strip("|").split("|")]
    out = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        out[cells[0]] = dict(zip(cols[1:], cells[1:]))
    return out


@pytest.fixture
def releases(sunrgbd_release, diml_release, rgbnir_release):
    layout = {s: {"bedroom": 3, "office": 3, "kitchen": 2, "lab": 2} for s in ("kv1", "realsense")}
    sun, _ = sunrgbd_release(layout)
    diml, _ = diml_release(per_class=3)
    nir, _ = rgbnir_release(per_class=2, orphan=False)
    return ["--sunrgbd", str(sun), "--diml", str(diml), "--rgbnir", str(nir),
            "--import-option", "sunrgbd.sensors=kv1,realsense",
            "--import-option", "sunrgbd.task_classes=bedroom,office",
            "--import-option", "rgbnir.ti_classes=indoor,urban,water"]


def test_every_table_in_the_paper_shape_with_the_shipped_numbers(releases, tmp_path, monkeypatch, no_plots):
    reproduce = _load()
    work = tmp_path / "work"
    args = [*releases, "--work", str(work), "--seeds", "0", *TINY]
    text = reproduce.main(args)
    assert "Cross-Modal Knowledge Transfer Without Task-Relevant Source Data. ECCV 2022" in text  # the citation

    t3 = table(text, "Table 3")
    assert list(t3) == ["kv1", "kv2", "realsense", "xtion", "average"]  # 4 × 4 + the per-target average
    assert len(t3["kv1"]) == 12
    ours, std, paper = CELL.fullmatch(t3["realsense"]["kv1 SOCKET"]).groups()
    assert paper == "20.3" and 0 <= float(ours) <= 100
    assert t3["kv2"]["kv2 SHOT"] == "— / 29.4"  # kv2 was not imported: not run, the paper's number still shown
    assert t3["average"]["kv1 SOCKET"].endswith("/ 18.4") and t3["average"]["kv1 SOCKET"].startswith("—")
    assert CELL.fullmatch(t3["kv1"]["realsense Unadapted"]).group(3) == "9.0"

    t4 = table(text, "Table 4")
    assert list(t4) == ["kv1+kv2", "kv1+realsense", "kv1+xtion", "kv2+realsense", "kv2+xtion", "realsense+xtion",
                        "average"]
    assert CELL.fullmatch(t4["kv1+realsense"]["realsense DECISION"]).group(3) == "24.3"
    assert t4["kv1+xtion"]["kv1 SOCKET"] == "— / 23.9"

    t5 = table(text, "Table 5")
    assert CELL.fullmatch(t5["SOCKET (TI: SUN RGB-D)"]["DIML depth"]).group(3) == "53.2"
    assert CELL.fullmatch(t5["SOCKET (TI: DIML RGB+D)"]["DIML depth"]).group(3) == "46.1"

    t6 = table(text, "Table 6")
    assert CELL.fullmatch(t6["NIR → RGB"]["SOCKET"]).group(3) == "92.7"
    assert CELL.fullmatch(t6["RGB → NIR"]["SHOT"]).group(3) == "86.7"

    t8 = table(text, "Table 8")
    assert t8["L_ma+d+ti"]["(b) kv1+xtion → kv1"] == "— / 23.9"
    t9 = table(text, "Table 9 (left)")
    assert CELL.fullmatch(t9["20 TI images / class"]["kv1 → kv1 SOCKET"]).group(3) == "20.3"
    t9r = table(text, "Table 9 (right)")
    assert CELL.fullmatch(t9r["λ_TI = λ_d = 0.50"]["kv1 → kv1"]).group(3) == "23.4"
    assert t9r["λ_TI = λ_d = 0.50"]["kv2 → kv2"] == "— / 36.7"

    runs = json.loads((work / "results.json").read_text())["runs"]
    # shared cells run once: Table 9's λ = 0 and 0 TI images are Table 3's SHOT kv1 → kv1
    assert t9r["λ_TI = λ_d = 0.00"]["kv1 → kv1"].split(" / ")[0] == t3["kv1"]["kv1 SHOT"].split(" / ")[0]
    nir = runs["rgbnir/nir2nirscene->nirscene/socket-lti=run-ld=run-ti=own/seed0"]
    assert nir["n"] == 12  # the 6 task classes' RGB images, 2 each
    nir_bundle = json.loads((Path(nir["bundle"]) / "bundle.json").read_text())
    assert nir_bundle["modality"] == "rgb" and nir_bundle["config"]["source_modality"] == "nir"
    sun_ti = runs["diml/diml->diml/socket-lti=run-ld=run-ti=sunrgbd/seed0"]
    units = json.loads((Path(sun_ti["bundle"]) / "bundle.json").read_text())["config"]["depth_units"]
    assert "sunrgbd" in units["ti"]["from"] and "import.json" in units["ti"]["from"]

    # a restarted run reuses every finished cell: no import, training or adaptation; --tables picks a subset
    import socketedge.adapt.run
    import socketedge.data.importers
    import socketedge.models.train

    def boom(*a, **k):
        raise AssertionError("should have been cached")

    monkeypatch.setattr(socketedge.data.importers, "import_dataset", boom)
    monkeypatch.setattr(socketedge.adapt.run, "adapt", boom)
    monkeypatch.setattr(socketedge.models.train, "train_source", boom)
    again = reproduce.main(args + ["--tables", "3,6"])
    assert "## Table 3" in again and "## Table 6" in again and "## Table 4" not in again
    assert table(again, "Table 6") == t6

    # --paper-numbers overrides a shipped number; a wrong key fails before any work
    numbers = tmp_path / "paper.json"
    numbers.write_text(json.dumps({"table6_rgbnir": {"nir_to_rgb": {"socket": 42.5}}}))
    filled = reproduce.main(args + ["--tables", "6", "--paper-numbers", str(numbers)])
    assert table(filled, "Table 6")["NIR → RGB"]["SOCKET"].endswith("/ 42.5")
    assert table(filled, "Table 6")["NIR → RGB"]["SHOT"].endswith("/ 92.2")
    numbers.write_text(json.dumps({"table6_rgbnir": {"nir_to_rbg": {"socket": 42.5}}}))
    from socketedge.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown key 'table6_rgbnir.nir_to_rbg'"):
        reproduce.main(args + ["--paper-numbers", str(numbers)])


@pytest.mark.slow
def test_sunrgbd_all_four_sensors(sunrgbd_release, tmp_path, no_plots):
    reproduce = _load()
    layout = {s: {"bedroom": 4, "office": 4, "kitchen": 2, "lab": 2} for s in ("kv1", "kv2", "realsense", "xtion")}
    root, _ = sunrgbd_release(layout)
    imported = tmp_path / "sun"
    from socketedge.data.importers import import_dataset

    import_dataset("sunrgbd", root, imported, task_classes=["bedroom", "office"], show_progress=False)
    text = reproduce.main(["--sunrgbd", str(imported), "--work", str(tmp_path / "w"), "--seeds", "0",
                           "--one-source", *TINY])
    for heading in ("Table 3", "Table 4", "Table 8", "Table 9 (left)", "Table 9 (right)"):
        grid = table(text, heading)
        cells = [c for row, cols in grid.items() if row != "average" for c in cols.values()]
        assert all(CELL.fullmatch(c) for c in cells), (heading, [c for c in cells if not CELL.fullmatch(c)])
    t4 = table(text, "Table 4")
    # every pair ran, so our average (a mean of means, no ±) is filled beside the paper's
    assert all(re.fullmatch(r"[\d.]+ / [\d.]+", c) for c in t4["average"].values()), t4["average"]
    runs = json.loads((tmp_path / "w" / "results.json").read_text())["runs"]
    assert len(runs["sunrgbd/kv1+xtion->kv1/decision/seed0"]["sources"]) == 2
    assert len(list((tmp_path / "w" / "sources").glob("*.ckpt"))) == 4  # one per sensor, shared by every table


def test_bad_options_fail_before_any_work(rgbnir_release, tmp_path):
    reproduce = _load()
    root, _ = rgbnir_release(per_class=1, orphan=False)
    from socketedge.errors import ConfigError

    base = ["--rgbnir", str(root), "--work", str(tmp_path / "w"), *TINY]
    with pytest.raises(ConfigError, match="unknown class 'beach'"):
        reproduce.main([*base, "--import-option", "task_classes=beach,field"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        reproduce.main([*base, "--import-option", "seed"])
    with pytest.raises(ConfigError, match="Table 3 needs --sunrgbd ROOT"):
        reproduce.main([*base, "--tables", "3,6"])
    with pytest.raises(ConfigError, match="no Table 7"):
        reproduce.main([*base, "--tables", "7"])
    with pytest.raises(ConfigError, match="'diml' is not among the given datasets"):
        reproduce.main([*base, "--import-option", "diml.num_task=3"])
