"""TI pairs from another camera: the TI set's depth units are its own (recorded beside it or given), the target's
are its own, both are honoured, and units that would silently mis-scale depth are an error.

The same scenes are stored three ways: millimetres, and 0.1 mm units (values × 10, as a 1/4-mm-class sensor
would). Adapting with either, each read at its own scale, must give the same model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from socketedge.adapt.config import AdaptConfig
from socketedge.adapt.run import Adapter
from socketedge.data.imageio import write_image
from socketedge.errors import ConfigError, DataError


def _rescaled(src: Path, dst: Path, factor: int) -> Path:
    """A copy of the folder ``src`` with every 16-bit depth PNG multiplied by ``factor`` (8-bit files as they are)."""
    for p in sorted(src.rglob("*.png")):
        out = dst / p.relative_to(src)
        raw = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if raw.dtype == np.uint16:
            write_image(out, (raw.astype(np.uint32) * factor).astype(np.uint16))
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(p.read_bytes())
    return dst


def _as_import(ti: Path, root: Path, scale: float) -> Path:
    """``ti`` placed as ROOT/ti of an import whose import.json records the TI set's depth scale."""
    dest = root / "ti"
    for p in sorted(ti.rglob("*.png")):
        out = dest / p.relative_to(ti)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(p.read_bytes())
    (root / "import.json").write_text(json.dumps({"format_version": 1, "kind": "import", "dataset": "other",
                                                  "ti": {"path": "ti", "modalities": ["rgb", "depth"],
                                                         "depth_scale": scale}}))
    return dest


@pytest.fixture
def units_data(adapt_data, tmp_path, no_plots):
    sources, target, ti = adapt_data
    fine_target = _rescaled(target / "depth", tmp_path / "target_01mm" / "depth", 10)
    fine_ti = _as_import(_rescaled(ti, tmp_path / "ti_01mm_plain", 10), tmp_path / "sun_like", 1e-4)
    return sources[:1], target / "depth", ti, fine_target, fine_ti


def _cfg(sources, target, ti, out, **kw) -> AdaptConfig:
    return AdaptConfig(sources=sources, target=target, ti=ti, out=out, epochs=1, batch_size=8, device="cpu",
                       ti_holdout=0.0, show_progress=False, **kw)


def test_ti_and_target_scales_are_both_honoured(units_data, tmp_path):
    torch.set_num_threads(1)
    sources, target, ti, fine_target, fine_ti = units_data
    runs = {"mm / mm": _cfg(sources, target, ti, tmp_path / "a"),
            # TI from "another camera": 0.1 mm units, recorded in its import.json; the target stays in mm
            "mm / 0.1mm (recorded)": _cfg(sources, target, fine_ti, tmp_path / "b"),
            # the target in 0.1 mm (given), the TI in mm (nothing recorded: not the target's scale, given too)
            "0.1mm / mm (given)": _cfg(sources, fine_target, ti, tmp_path / "c", depth_scale=1e-4,
                                       ti_depth_scale=1e-3)}
    adapters = {name: Adapter(cfg) for name, cfg in runs.items()}
    ref = adapters["mm / mm"]
    assert ref.ti_units.scale == 1e-3 and "target" in ref.ti_units.origin  # fell back to the target's units
    assert adapters["mm / 0.1mm (recorded)"].ti_units.scale == 1e-4
    assert "import.json" in adapters["mm / 0.1mm (recorded)"].ti_units.origin
    assert adapters["0.1mm / mm (given)"].members[0].preprocess.spec.depth_scale == 1e-4

    def model_input(a: Adapter) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return a.ti_pre[0](a.ti_tgt.raw), a.members[0].preprocess(a.target.raw)

    ref_ti, ref_target = model_input(ref)
    for a in adapters.values():
        got_ti, got_target = model_input(a)
        # raw values differ ×10, the model input does not (up to resize rounding: 0.5 raw unit)
        torch.testing.assert_close(got_ti, ref_ti, atol=3e-3, rtol=0)
        torch.testing.assert_close(got_target, ref_target, atol=3e-3, rtol=0)
        torch.testing.assert_close(a.psi[0], ref.psi[0])  # ψ: the RGB side, identical files
    assert adapters["mm / 0.1mm (recorded)"].ti_tgt.raw.float().mean() > 5 * ref.ti_tgt.raw.float().mean()
    assert adapters["0.1mm / mm (given)"].target.raw.float().mean() > 5 * ref.target.raw.float().mean()

    results = {name: a.run() for name, a in adapters.items()}
    base = results["mm / mm"]
    for name, r in results.items():
        torch.testing.assert_close(r.ensemble.zeta, base.ensemble.zeta)
        for p, q in zip(r.ensemble.members[0].model.parameters(), base.ensemble.members[0].model.parameters()):
            torch.testing.assert_close(p, q, atol=2e-3, rtol=1e-3)
    recorded = json.loads((tmp_path / "b" / "bundle.json").read_text())["config"]["depth_units"]
    assert recorded["ti"]["depth_scale"] == 1e-4 and recorded["target"]["depth_scale"] == 1e-3


def test_units_that_would_mis_scale_depth_are_errors(units_data, tmp_path, cli):
    sources, target, ti, fine_target, fine_ti = units_data
    # 0.1 mm TI pairs with no record are not silently read at the target's 1 mm per unit
    plain_fine = fine_ti.parent.parent / "ti_01mm_plain"
    with pytest.raises(DataError, match="typical depth is 30.* m, outside the valid range"):
        Adapter(_cfg(sources, target, plain_fine, tmp_path / "x"))
    # an option that contradicts the recorded scale
    with pytest.raises(ConfigError, match="--ti-depth-scale 0.001 contradicts the depth scale 0.0001"):
        Adapter(_cfg(sources, target, fine_ti, tmp_path / "y", ti_depth_scale=1e-3))
    # a 0.1 mm target read at the default 1 mm: one line, exit code 1 through the CLI
    result = cli("adapt", "--source", sources[0], "--target", fine_target, "--ti", ti, "--out", tmp_path / "z",
                 "--epochs", "1", "--batch-size", "8", "--device", "cpu")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--depth-scale" in lines[0] and "outside the valid range" in lines[0], lines
    assert not (tmp_path / "z").exists()


def test_ti_valid_range_masks_out_of_range_depth(units_data, tmp_path):
    sources, target, ti, _, _ = units_data
    a = Adapter(_cfg(sources, target, ti, tmp_path / "v", ti_depth_range=(0.5, 3.5)))
    spec = a.ti_pre[0].spec
    assert spec.depth_valid == (0.5, 3.5) and spec.depth_near == a.members[0].preprocess.spec.depth_near
    raw = torch.tensor([[[[400, 1000, 3000, 3600]]]], dtype=torch.int32)  # mm: below, in, in, above the range
    unit = a.ti_pre[0].unit(raw)[0, 0, 0]
    model = a.members[0].preprocess.unit(raw)[0, 0, 0]
    assert unit[0] == unit[3] == 0  # missing measurements, as the sensor reports no depth
    torch.testing.assert_close(unit[1:3], model[1:3])  # in range: exactly the model's own mapping
