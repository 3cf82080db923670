import torch
from torch import nn

from socketedge.adapt.bn_stats import BatchStatsRecorder, source_stats
from socketedge.adapt.pseudo_labels import mix_features, pseudo_labels
from socketedge.errors import ModelError
from socketedge.models.source_model import new_source_model


def test_pseudo_labels_recover_clusters_from_poor_predictions():
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(3) * 5
    truth = torch.arange(60) % 3
    feats = centres[truth] + 0.3 * torch.randn(60, 3, generator=g)
    # predictions right only 60% of the time, but mostly on the diagonal
    probs = torch.full((60, 3), 0.2)
    probs[torch.arange(60), truth] = 0.6
    flip = torch.rand(60, generator=g) < 0.4
    probs[flip] = probs[flip].roll(1, dims=1)
    assert (probs.argmax(1) == truth).float().mean() < 0.8
    labels = pseudo_labels(feats, probs)
    assert (labels == truth).float().mean() > 0.95


def test_mix_features_same_and_different_widths():
    a, b = torch.ones(2, 4), torch.zeros(2, 4)
    assert torch.allclose(mix_features([a, b], torch.tensor([0.25, 0.75])), torch.full((2, 4), 0.25))
    assert mix_features([a, torch.ones(2, 3)], torch.tensor([0.5, 0.5])).shape == (2, 7)


def test_source_stats_are_copies_and_hooks_record_batch_statistics():
    model = new_source_model("tiny_cnn", ["a", "b"])
    mean, var = source_stats(model.encoder)
    assert len(mean) == 4  # 3 conv BN layers + the bottleneck BN
    rec = BatchStatsRecorder(model.encoder)
    model.train()
    x = torch.randn(8, 3, 32, 32) * 3 + 1
    with rec.recording():
        model.encoder(x)
    # the first BN sees the first conv's output: check against a direct computation
    first_conv = model.encoder[0].features[0]
    y = first_conv(x)
    assert torch.allclose(rec.means[0], y.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(rec.vars[0], y.var(dim=(0, 2, 3), unbiased=False), atol=1e-4)
    # training mode updated the running statistics, the copies did not move
    assert not torch.equal(model.encoder[0].features[1].running_mean, mean[0])
    # outside recording nothing is kept
    kept = rec.means[0]
    model.encoder(torch.randn(8, 3, 32, 32))
    assert rec.means[0] is kept
    rec.remove()


def test_model_without_batchnorm_is_a_clear_error():
    encoder = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4))
    try:
        source_stats(encoder, "nobn.ckpt")
    except ModelError as e:
        assert "nobn.ckpt has no BatchNorm layer" in str(e) and "--lambda-d 0" in str(e)
    else:
        raise AssertionError("expected ModelError")


def test_pseudo_label_mix_brings_sources_to_one_scale():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [1.0, 0.0]]) * 1000  # the same information at 1000× the norm
    zeta = torch.tensor([0.5, 0.5])
    raw = mix_features([a, b], zeta)
    fair = mix_features([a, b], zeta, per_source_scale=True)
    assert raw[0, 1] / raw[0, 0] > 100  # without it the larger network decides
    assert torch.allclose(fair[0, 0], fair[0, 1])
    assert torch.equal(mix_features([a], torch.tensor([1.0]), per_source_scale=True), a)  # one source: as is
