"""`socketedge export` through the real entry point: success, failing parity, and one-line user errors."""

from __future__ import annotations

import json

import onnxruntime as ort
import pytest

from socketedge.export.metadata import ModelCard
from socketedge.models.checkpoint import save_source
from socketedge.models.source_model import new_source_model

from export_helpers import CLASSES


def one_line_error(result, *needles):
    assert result.exit_code == 1
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_failing_parity_exits_1_and_marks_the_artifact(cli, bundle1, tmp_path):
    out = tmp_path / "strict.onnx"
    result = cli("export", bundle1, "--out", out, "--parity-threshold", "1e-15")
    assert result.exit_code == 1
    assert "FAILED" in result.stderr and "failed its parity check" in result.stderr
    assert not out.exists()  # never written under the name a deployment runs
    failed = tmp_path / "strict.failed.onnx"  # the candidate is kept, under a name that says so
    session = ort.InferenceSession(str(failed), providers=["CPUExecutionProvider"])
    card = ModelCard.from_props(dict(session.get_modelmeta().custom_metadata_map))
    assert card.parity_passed is False and card.parity["threshold"] == 1e-15
    assert json.loads((tmp_path / "strict.failed.onnx.parity.json").read_text())["passed"] is False
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_failed_export_leaves_the_good_model_untouched_and_run_refuses_the_candidate(cli, bundle1, tmp_path):
    """Regression (issue 13, item 1): a failing re-export over a good keep.onnx used to replace it, and `run`
    then ran the failed model without a word."""
    good = tmp_path / "keep.onnx"
    assert cli("export", bundle1, "--out", good).exit_code == 0
    before = (good.read_bytes(), (tmp_path / "keep.onnx.parity.json").read_bytes())
    result = cli("export", bundle1, "--out", good, "--parity-threshold", "1e-15")
    assert result.exit_code == 1 and f"{good} is unchanged" in result.stderr
    assert (good.read_bytes(), (tmp_path / "keep.onnx.parity.json").read_bytes()) == before
    failed = tmp_path / "keep.failed.onnx"
    assert failed.is_file()
    ok = cli("run", good, "--source", "synthetic://?size=40&frames=2", "--headless", "--quiet")
    assert ok.exit_code == 0, ok.stderr
    refused = cli("run", failed, "--source", "synthetic://?size=40&frames=2", "--headless", "--quiet")
    one_line_error(refused, "failed its parity check", "--allow-failed-parity")
    forced = cli("run", failed, "--source", "synthetic://?size=40&frames=2", "--headless", "--quiet",
                 "--allow-failed-parity")
    assert forced.exit_code == 0, forced.stderr
    assert "warning:" in forced.stderr and "FAILED its parity check" in forced.stderr


def test_source_checkpoint_exports_with_modality(cli, tmp_path, target_dir):
    ckpt = save_source(new_source_model("tiny_cnn", CLASSES), tmp_path / "src.ckpt")
    no_modality = cli("export", ckpt, "--out", tmp_path / "a.onnx")
    one_line_error(no_modality, "--modality")
    int8_no_calib = cli("export", ckpt, "--out", tmp_path / "a.onnx", "--modality", "depth", "--precision", "int8")
    one_line_error(int8_no_calib, "--calib")
    ok = cli("export", ckpt, "--out", tmp_path / "a.onnx", "--modality", "depth", "--calib", target_dir)
    assert ok.exit_code == 0, ok.stderr
    assert "passed" in ok.stderr and "wrote" in ok.stderr
    card = ModelCard.from_props(dict(ort.InferenceSession(
        str(tmp_path / "a.onnx"), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map))
    assert card.method == "source" and card.modality == "depth" and card.extra["model_files"].keys() == {"src.ckpt"}


def test_missing_bundle(cli, tmp_path):
    one_line_error(cli("export", tmp_path / "nope", "--out", tmp_path / "m.onnx"), "does not exist")


def test_empty_calibration_folder(cli, bundle1, tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(cli("export", bundle1, "--out", tmp_path / "m.onnx", "--calib", tmp_path / "empty"), "empty")


def test_wrong_modality(cli, bundle1, tmp_path):
    one_line_error(cli("export", bundle1, "--out", tmp_path / "m.onnx", "--modality", "thermal"),
                   "adapted to depth")


def test_calibration_frames_of_another_modality(cli, bundle1, make_dataset, tmp_path):
    nir = make_dataset("cal", modalities=("nir",), per_class=1)
    one_line_error(cli("export", bundle1, "--out", tmp_path / "m.onnx", "--calib", nir / "nir"), "nir")


@pytest.mark.parametrize("args,needle", [
    (("--precision", "int4"), "unknown precision 'int4'"),
    (("--format", "tflite"), "unknown export format 'tflite'"),
])
def test_unknown_names(cli, bundle1, tmp_path, args, needle):
    one_line_error(cli("export", bundle1, "--out", tmp_path / "m.onnx", *args), needle, "valid:")


def test_out_suffix(cli, bundle1, tmp_path):
    one_line_error(cli("export", bundle1, "--out", tmp_path / "m.engine"), ".onnx")
