"""`export --precision auto`: the choice logic on fixed numbers, and the whole path through a stub backend whose
candidates take fixed times (the real measurement is benchmarks/export_latency.py's)."""

from __future__ import annotations

import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from socketedge.export.auto import Measured, choose
from socketedge.export.metadata import ModelCard
from socketedge.export.pipeline import ExportConfig, export_model
from socketedge.runtime.backends import register_backend
from socketedge.runtime.onnx_backend import OnnxRuntimeBackend

# seconds per inference of each candidate in the stub: int8-uint8 clearly the fastest, then int8
TIMES = {"fp32": 0.02, "fp16": 0.03, "int8": 0.01, "int8-uint8": 0.002, "int8-uint8-stem-float": 0.004,
         "int8-uint8-qat": 0.004, "int8-uint8-mixed": 0.004}
UINT8 = {"int8-uint8", "int8-uint8-stem-float", "int8-uint8-qat", "int8-uint8-mixed"}
CORRUPT: set[str] = set()  # candidates whose stub answers with the wrong class (the tolerance test)
# candidates whose stub keeps every top-1 class but flattens the probabilities towards uniform (p → 0.4 p + 0.6 / C,
# a monotone map): perfect agreement, wrong probabilities — what top-1 agreement alone would accept
FLATTEN: set[str] = set()


def candidate_of(card: ModelCard) -> str:
    if card.extra.get("int8_activations") == "uint8":
        if card.extra.get("int8_finetune"):
            return "int8-uint8-qat"
        if "stem" in card.extra.get("int8_float_layers", ()):
            return "int8-uint8-stem-float"
        return "int8-uint8-mixed" if card.extra.get("int8_float_nodes") else "int8-uint8"
    return card.precision


@register_backend("stubtimed")
class FixedTimingBackend(OnnxRuntimeBackend):
    """onnxruntime on CPU for the real outputs, but each candidate takes a fixed time per inference."""

    @classmethod
    def open(cls, model, provider="auto", threads=None, require_gpu=False, iobinding=None):
        return super().open(model, provider="cpu", threads=1)

    def infer(self, frames):
        probs, label = super().infer(frames)
        name = candidate_of(self.card)
        time.sleep(TIMES[name])
        if name in CORRUPT:
            probs = np.roll(probs, 1, axis=1)
            label = probs.argmax(1)
        if name in FLATTEN:
            probs = (0.4 * probs + 0.6 / probs.shape[1]).astype(probs.dtype)
        return probs, label


def measured(name, ms, agreement=1.0, precision="int8", mean_tv=0.0):
    return Measured(name, precision, None, median_ms=ms, agreement=agreement, mean_tv=mean_tv)


def test_choose_keeps_the_fastest_candidate_that_agrees():
    cands = [measured("fp32", 50, precision="fp32"), measured("fp16", 80), measured("int8", 90),
             measured("int8-uint8", 30)]
    chosen, reason = choose(cands, 0.99)
    assert chosen.name == "int8-uint8" and "1.67× faster than fp32" in reason
    assert cands[1].verdict.startswith("slower")


def test_choose_respects_the_agreement_tolerance():
    cands = [measured("fp32", 50, precision="fp32"), measured("int8", 40, agreement=0.995),
             measured("int8-uint8", 30, agreement=0.98)]
    assert choose(cands, 0.99)[0].name == "int8"
    assert "rejected: top-1 agreement 98.00% < 99.00%" == cands[2].verdict
    assert choose(cands, 0.97)[0].name == "int8-uint8"
    chosen, reason = choose(cands, 0.999)
    assert chosen.name == "fp32" and reason.startswith("fp32 kept")


def test_choose_rejects_good_agreement_with_large_probability_error():
    cands = [measured("fp32", 50, precision="fp32"), measured("int8", 40, mean_tv=0.01),
             measured("int8-uint8", 20, agreement=1.0, mean_tv=0.3)]
    chosen, reason = choose(cands, 0.99, max_prob_error=0.02)
    assert chosen.name == "int8" and "mean probability error 0.0100" in reason
    assert cands[2].verdict == "rejected: mean probability error (TV) 0.3000 > 0.0200"
    assert choose(cands, 0.99, max_prob_error=0.5)[0].name == "int8-uint8"
    # a candidate whose probability error was never measured does not qualify either
    cands[1].mean_tv = None
    assert choose(cands, 0.99, max_prob_error=0.02)[0].name == "fp32"


def test_prob_errors():
    from socketedge.export.auto import prob_errors

    ref = np.array([[0.9, 0.1], [0.4, 0.6], [0.55, 0.45]])
    got = np.array([[0.8, 0.2], [0.6, 0.4], [0.55, 0.45]])
    e = prob_errors(got, ref)
    assert e["agreement"] == pytest.approx(2 / 3) and e["max_abs"] == pytest.approx(0.2)
    assert e["mean_tv"] == pytest.approx((0.1 + 0.2 + 0.0) / 3)
    assert e["confident_agreement"] == pytest.approx(2 / 3)  # all three have top p ≥ 0.5


def test_near_ties_and_the_note_they_give_a_rejection():
    from socketedge.export.auto import tie_note
    from socketedge.export.precision import near_ties

    ref = np.array([[0.50, 0.49, 0.01], [0.9, 0.05, 0.05], [0.34, 0.33, 0.33], [0.6, 0.1, 0.3]])
    assert near_ties(ref, 0.02) == 2 and near_ties(ref, 0.5) == 3 and near_ties(ref, 0.005) == 0
    assert near_ties(np.ones((3, 1)), 0.02) == 0  # one class: nothing to tie with
    cands = [measured("fp32", 50, precision="fp32"), measured("int8-uint8", 10, agreement=0.75)]
    choose(cands, 0.99)
    note = tie_note(2, 4, cands, 0.99, 0.02)
    assert "2 of 4 check frames are fp32 near-ties" in note and "--min-agreement 99%" in note
    assert tie_note(0, 4, cands, 0.99, 0.02) == ""  # no ties: the rejection stands on its own
    assert tie_note(2, 400, cands, 0.99, 0.02) == ""  # fewer ties than the 4 flips 99% of 400 allows
    cands = [measured("fp32", 50, precision="fp32"), measured("int8-uint8", 10)]
    choose(cands, 0.99)  # nothing rejected on agreement: nothing to explain
    assert tie_note(2, 4, cands, 0.99, 0.02) == ""


def test_choose_prefers_the_more_exact_candidate_within_the_margin():
    cands = [measured("fp32", 50, precision="fp32"), measured("int8-uint8", 48.5)]
    chosen, reason = choose(cands, 0.99)
    assert chosen.name == "fp32" and "only 1.03× faster" in reason
    assert "more exact fp32" in cands[1].verdict


def test_choose_skips_candidates_that_failed():
    cands = [measured("fp32", 50, precision="fp32"), Measured("fp16", "fp16", None, error="no kernel")]
    assert choose(cands, 0.99)[0].name == "fp32" and cands[1].verdict == "failed: no kernel"


def _auto(bundle, out, **kw):
    return export_model(ExportConfig(model=bundle, out=out, precision="auto", auto_backend="stubtimed",
                                     auto_warmup=0, auto_iters=3, calib_frames=8, **kw))


def test_auto_picks_the_clearly_faster_variant(trained_bundle, tmp_path, cli):
    result = _auto(trained_bundle, tmp_path / "auto.onnx")
    record = result.card.extra["precision_auto"]
    assert record["chosen"] == "int8-uint8", record
    assert result.passed and result.card.precision == "int8" and result.card.extra["int8_activations"] == "uint8"
    by_name = {c["name"]: c for c in record["candidates"]}
    assert set(by_name) == {"fp32", "fp16", "int8"} | UINT8
    assert result.card.extra["int8_float_layers"] == ["head"]
    assert by_name["int8-uint8-stem-float"]["median_ms"] > by_name["int8-uint8"]["median_ms"]
    # plain int8-uint8 is within the tolerance, so neither fine-tuning nor a mixed-precision search is made
    for name in ("int8-uint8-qat", "int8-uint8-mixed"):
        assert by_name.pop(name)["verdict"] == "not built: int8-uint8 already within the tolerance"
    assert by_name["int8-uint8"]["median_ms"] < by_name["int8"]["median_ms"] < by_name["fp32"]["median_ms"]
    assert all(c["agreement"] >= 0.99 for c in by_name.values())
    assert "faster than fp32" in record["reason"] and record["backend"] == "stubtimed"
    assert "int8 /" in by_name["int8-uint8"]["kernels"]  # the onnxruntime kernel census is recorded
    # the file written is the chosen graph, and its card says so
    model = onnx.load(str(result.onnx_path))
    zero_points = [numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("_zero_point")]
    assert any(z.dtype == np.uint8 for z in zero_points)
    card = ModelCard.from_props(dict(ort.InferenceSession(
        str(result.onnx_path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map))
    assert card.extra["precision_auto"]["chosen"] == "int8-uint8"
    # `bench` shows the comparison recorded at export
    shown = cli("bench", result.onnx_path, "--batch", "1", "--iters", "2", "--warmup", "0", "--loop-frames", "0",
                "--shape", "40x40")
    assert shown.exit_code == 0, shown.stderr
    text = shown.stdout + shown.stderr
    assert "precision chosen at export" in text and "int8-uint8" in text and "chosen" in text


def test_auto_respects_the_accuracy_tolerance(trained_bundle, tmp_path):
    CORRUPT.update(UINT8)
    try:  # the tiny test model's int8 moves ~0.05 of probability mass: a looser bound, so int8 qualifies
        result = _auto(trained_bundle, tmp_path / "auto.onnx", auto_max_prob_error=0.1)
    finally:
        CORRUPT.clear()
    record = result.card.extra["precision_auto"]
    by_name = {c["name"]: c for c in record["candidates"]}
    assert by_name["int8-uint8"]["verdict"].startswith("rejected: top-1 agreement")
    assert record["chosen"] == "int8" and result.card.extra["int8_activations"] == "int8"
    # the fine-tuned candidate was built (no plain one qualified) and judged only on the frames it held aside
    qat = by_name["int8-uint8-qat"]
    assert qat["finetune"]["held_aside"] == [0, 4] and qat["check_frames"] == 2
    assert by_name["int8-uint8"]["check_frames"] == 8
    assert 0 <= record["reference_near_ties"] <= 8
    # no reduced precision allowed to differ at all, and int8 differing a little: fp32 is kept
    strict = _auto(trained_bundle, tmp_path / "strict.onnx", auto_min_agreement=1.0, auto_max_prob_error=0.1)
    chosen = strict.card.extra["precision_auto"]["chosen"]
    agreements = {c["name"]: c["agreement"] for c in strict.card.extra["precision_auto"]["candidates"]}
    assert agreements[chosen] == 1.0


def test_auto_rejects_a_variant_with_good_agreement_but_wrong_probabilities(trained_bundle, tmp_path):
    FLATTEN.update(UINT8)
    try:
        result = _auto(trained_bundle, tmp_path / "auto.onnx", auto_max_prob_error=0.1)
    finally:
        FLATTEN.clear()
    record = result.card.extra["precision_auto"]
    by_name = {c["name"]: c for c in record["candidates"]}
    assert by_name["int8-uint8"]["agreement"] == 1.0  # top-1 agreement alone would have taken it
    assert by_name["int8-uint8"]["mean_tv"] > record["max_prob_error"] == 0.1
    assert by_name["int8-uint8"]["verdict"].startswith("rejected: mean probability error")
    assert record["chosen"] == "int8" and result.card.extra["int8_activations"] == "int8"


def test_auto_needs_calibration_frames_and_the_onnx_format(cli, tmp_path, bundle1):
    from socketedge.models.checkpoint import save_source
    from socketedge.models.source_model import new_source_model

    from export_helpers import CLASSES

    ckpt = save_source(new_source_model("tiny_cnn", CLASSES), tmp_path / "src.ckpt")
    r = cli("export", ckpt, "--out", tmp_path / "a.onnx", "--modality", "depth", "--precision", "auto")
    assert r.exit_code == 1 and "--calib" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("export", bundle1, "--out", tmp_path / "a.onnx", "--precision", "auto", "--int8-activations", "uint8")
    assert r.exit_code == 1 and "drop --int8-activations" in r.stderr


@pytest.fixture(autouse=True)
def _no_leftover_corruption():
    yield
    CORRUPT.clear()
    FLATTEN.clear()


def test_reduce_range_follows_the_cpus_dot_product():
    from socketedge.export.precision import reduce_range_for

    assert reduce_range_for({"int8_features": ["avx2"]}) and reduce_range_for({"int8_features": ["avx2", "avx512f"]})
    assert reduce_range_for({})
    for dot in ("avx512_vnni", "avx_vnni", "asimddp"):
        assert not reduce_range_for({"int8_features": ["avx2", dot]})


@pytest.mark.parametrize("features,bits", [(["avx2"], 7), (["avx2", "avx512f", "avx512_vnni"], 8)])
def test_auto_gives_the_uint8_form_full_weights_where_the_cpu_does_not_saturate(trained_bundle, tmp_path,
                                                                                 monkeypatch, features, bits):
    import socketedge.runtime.ort_profile as ort_profile

    monkeypatch.setattr(ort_profile, "cpu_features", lambda: {"model": "test", "machine": "x86_64",
                                                               "int8_features": features})
    result = _auto(trained_bundle, tmp_path / "auto.onnx")
    record = result.card.extra["precision_auto"]
    assert record["chosen"] == "int8-uint8" and record["uint8_weight_bits"] == bits
    assert result.card.extra["int8_weight_bits"] == bits
    model = onnx.load(str(result.onnx_path))
    weights = [numpy_helper.to_array(t) for t in model.graph.initializer
               if numpy_helper.to_array(t).dtype == np.int8 and t.dims and len(t.dims) >= 2]
    largest = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
    assert largest == (64 if bits == 7 else 127)
