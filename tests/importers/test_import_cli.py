"""`socketedge import …`: the printed class table, and bad input as one line + exit code 1."""

from __future__ import annotations

import json

SENSORS = ("kv1", "kv2", "realsense", "xtion")


def _one_error_line(res) -> str:
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    assert res.exit_code == 1, res
    assert len(lines) == 1, lines
    assert lines[0].startswith("error:")
    return lines[0]


def test_sunrgbd_prints_class_table(cli, sunrgbd_release, tmp_path):
    layout = {s: {"bedroom": 2, "office": 1, "lab": 1 if s == "kv2" else 0} for s in SENSORS}
    root, _ = sunrgbd_release({s: {c: n for c, n in per.items() if n} for s, per in layout.items()})
    res = cli("import", "sunrgbd", root, "--out", tmp_path / "sun")
    assert res.exit_code == 0, res.stderr
    text = res.stdout + res.stderr
    assert "2 task / 1 TI classes" in text
    for line in ("bedroom", "office", "lab"):
        assert line in text
    row = next(ln for ln in text.splitlines() if "bedroom" in ln)
    assert row.split("│")[-2].strip() == "8"  # total over the four sensors
    assert "depth scale (metres per unit): kv1 0.001" in text
    out = tmp_path / "sun"
    assert f"socketedge adapt --source kv1.ckpt --target {out / 'kv1' / 'target' / 'depth'} --ti {out / 'ti'}" in text
    assert json.loads((tmp_path / "sun" / "import.json").read_text())["split"]["ti_classes"] == ["lab"]


def test_rgbnir_and_diml_commands(cli, rgbnir_release, diml_release, tmp_path):
    root, _ = rgbnir_release(per_class=1, orphan=False)
    res = cli("import", "rgbnir", root, "--out", tmp_path / "nir", "--ti-classes", "indoor,urban,water")
    assert res.exit_code == 0, res.stderr
    assert "6 task / 3 TI classes (RGB → nir)" in res.stdout + res.stderr
    root, _ = diml_release(per_class=2)
    res = cli("import", "diml", root, "--out", tmp_path / "diml", "--num-task", "6", "--seed", "2")
    assert res.exit_code == 0, res.stderr
    assert "6 task / 2 TI classes (RGB → depth)" in res.stdout + res.stderr


def test_bad_input_is_one_line(cli, sunrgbd_release, rgbnir_release, tmp_path):
    assert "does not exist" in _one_error_line(cli("import", "sunrgbd", tmp_path / "missing", "--out", tmp_path / "o"))
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.jpg").write_bytes(b"")
    assert "none of the sensor folders" in _one_error_line(
        cli("import", "sunrgbd", tmp_path / "flat", "--out", tmp_path / "o"))
    assert "NNNN_rgb" in _one_error_line(cli("import", "rgbnir", tmp_path / "flat", "--out", tmp_path / "o"))
    assert "no indoor/ folder" in _one_error_line(cli("import", "diml", tmp_path / "flat", "--out", tmp_path / "o"))
    root, _ = rgbnir_release(per_class=1, orphan=False)
    line = _one_error_line(cli("import", "rgbnir", root, "--out", tmp_path / "o", "--task-classes", "forest,beach"))
    assert "unknown class 'beach' in --task-classes" in line and "country" in line
    line = _one_error_line(cli("import", "sunrgbd", tmp_path / "flat", "--out", tmp_path / "o",
                               "--depth-source", "fancy"))
    assert "depth_source" in line
    assert not (tmp_path / "o").exists()


def test_help_lists_importers(cli):
    res = cli("import", "--help")
    assert res.exit_code == 0
    for name in ("sunrgbd", "rgbnir", "diml"):
        assert name in res.stdout
