import json

import pytest
import torch

from socketedge.adapt.config import AdaptConfig
from socketedge.adapt.run import AdaptInterrupted, adapt
from socketedge.models.bundle import load_bundle
from socketedge.models.checkpoint import load_source, save_source
from socketedge.models.source_model import new_source_model


@pytest.fixture
def setup(make_dataset, tmp_path):
    torch.manual_seed(0)
    sources = []
    for i in range(2):
        m = new_source_model("tiny_cnn", ["a", "b", "c", "d"])
        m.train()
        m(torch.randn(16, 3, 32, 32))  # non-trivial running statistics
        sources.append(save_source(m.eval(), tmp_path / f"s{i}.ckpt"))
    target = make_dataset("target", per_class=6, modalities=("depth",), labeled=False, seed=1)
    ti = make_dataset("ti", classes=("e", "f", "g"), per_class=6, modalities=("rgb", "depth"), seed=2)
    labels = make_dataset("labels", per_class=3, modalities=("depth",), seed=3)
    return sources, target, ti, labels


def _cfg(setup, tmp_path, **kw):
    sources, target, ti, labels = setup
    base = dict(sources=sources, target=target / "depth", ti=ti, out=tmp_path / "bundle", epochs=2, batch_size=8,
                device="cpu", show_progress=False, labels=labels)
    return AdaptConfig(**(base | kw))


def test_socket_two_sources_bundle_metrics_and_frozen_classifiers(setup, tmp_path):
    cfg = _cfg(setup, tmp_path)
    result = adapt(cfg)
    ensemble, manifest = load_bundle(result.bundle)
    assert manifest.method == "socket" and manifest.modality == "depth" and len(manifest.sources) == 2
    assert abs(sum(manifest.zeta) - 1) < 1e-6
    metrics = json.loads((result.bundle / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    for term in ("loss", "ent", "div", "pl", "ti", "bn", "zeta", "accuracy"):
        assert term in metrics["history"][0]
    assert metrics["gap"]["before"]["n_pairs"] > 0 and "cka" in metrics["gap"]["after"]["mixed"]
    for f in ("metrics.png", "gap.png", "weights.safetensors", "bundle.json"):
        assert (result.bundle / f).stat().st_size > 0
    assert not (result.bundle / "resume.pt").exists()
    for k, path in enumerate(cfg.sources):
        src = load_source(path)
        adapted = ensemble.members[k].model
        for (name, a), b in zip(src.classifier.state_dict().items(), adapted.classifier.state_dict().values()):
            assert torch.equal(a, b), f"classifier {name} changed"
        enc_src, enc_new = src.encoder.state_dict(), adapted.encoder.state_dict()
        assert any(not torch.equal(enc_src[n], enc_new[n]) for n in enc_src), "encoder did not adapt"


def test_shot_and_decision_switch_off_ti_and_bn(setup, tmp_path):
    sources = setup[0]
    shot = adapt(_cfg(setup, tmp_path, sources=sources[:1], method="shot", out=tmp_path / "shot"))
    h = shot.metrics["history"][0]
    assert "ti" not in h and "bn" not in h and "pl" in h
    assert "gap" in shot.metrics  # --ti given: used for diagnostics only
    dec = adapt(_cfg(setup, tmp_path, method="decision", ti=None, out=tmp_path / "dec"))
    assert len(dec.metrics["zeta"]) == 2 and "ti" not in dec.metrics["history"][0]


def test_resume_reaches_the_same_weights(setup, tmp_path):
    full = adapt(_cfg(setup, tmp_path, out=tmp_path / "full"))

