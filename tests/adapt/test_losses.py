import math

import pytest
import torch

from socketedge.adapt import losses


@pytest.fixture(autouse=True)
def _double():
    """gradcheck wants float64; set it per test and always restore the default."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_entropy_of_uniform_is_log_c_and_one_hot_is_zero():
    c = 7
    assert float(losses.entropy(torch.full((3, c), 1 / c))) == pytest.approx(math.log(c), rel=1e-5)
    assert float(losses.entropy(torch.eye(c))) == pytest.approx(0, abs=1e-4)


def test_diversity_is_entropy_of_the_mean():
    # every sample confident but on different classes: mean uniform → log C
    assert float(losses.diversity(torch.eye(4))) == pytest.approx(math.log(4), rel=1e-5)
    # all samples on the same class: no diversity
    same = torch.zeros(5, 4)
    same[:, 2] = 1
    assert float(losses.diversity(same)) == pytest.approx(0, abs=1e-4)


def test_pseudo_label_ce_known_value():
    p = torch.tensor([[0.5, 0.5], [0.25, 0.75]])
    y = torch.tensor([0, 1])
    assert float(losses.pseudo_label_ce(p, y)) == pytest.approx(-(math.log(0.5) + math.log(0.75)) / 2, rel=1e-5)


def test_mix_with_one_hot_zeta_equals_member():
    probs = torch.rand(3, 4, 5).softmax(-1)
    for k in range(3):
        zeta = torch.nn.functional.one_hot(torch.tensor(k), 3).double()
        assert torch.allclose(losses.mix(zeta, probs), probs[k])


def test_ti_distance_known_value_and_zero():
    psi = [torch.zeros(2, 4), torch.ones(2, 3)]
    feats = [torch.ones(2, 4), torch.ones(2, 3)]
    zeta = torch.tensor([0.25, 0.75])
    # source 0: ‖0.25 · (0 − 1)‖² over 4 dims = 4 · 0.0625; source 1 matches
    assert float(losses.ti_distance(psi, feats, zeta)) == pytest.approx(4 * 0.25**2)
    assert float(losses.ti_distance(feats, feats, zeta)) == 0


def _stats(k, shapes, seed):
    g = torch.Generator().manual_seed(seed)
    return [[torch.rand(s, generator=g) for s in shapes] for _ in range(k)]


def test_bn_term_is_zero_when_statistics_match():
    m, v = _stats(2, [3, 5], 0), _stats(2, [3, 5], 1)
    zeta = torch.tensor([0.3, 0.7])
    assert float(losses.bn_stat_distance(m, v, m, v, zeta)) == 0


def test_bn_term_known_value_same_architecture():
    # two layers of 4 channels; layer 0's mixed means differ by 1 in every channel → ‖·‖ = 2, layer 1's
    # variances by 3 in one channel → 3; everything else matches: 2 + 3
    src_m = [[torch.zeros(4), torch.zeros(4)]] * 2
    tgt_m = [[torch.ones(4), torch.zeros(4)]] * 2
    src_v = [[torch.ones(4), torch.ones(4)]] * 2
    tgt_v = [[torch.ones(4), torch.tensor([4.0, 1, 1, 1])]] * 2
    assert float(losses.bn_stat_distance(src_m, src_v, tgt_m, tgt_v, torch.tensor([0.5, 0.5]))) == pytest.approx(5.0)


def test_bn_term_mixes_inside_the_norm_for_same_architecture():
    # source 0 too high by 1, source 1 too low by 1: with equal ζ the mixed statistics agree (paper's form)
    src_m = [[torch.ones(2)], [-torch.ones(2)]]
    tgt_m = [[torch.zeros(2)], [torch.zeros(2)]]
    var = [[torch.ones(2)], [torch.ones(2)]]
    assert float(losses.bn_stat_distance(src_m, var, tgt_m, var, torch.tensor([0.5, 0.5]))) == pytest.approx(0)


def test_bn_term_heterogeneous_architectures_weights_each_source():
    src_m = [[torch.zeros(4)], [torch.zeros(2), torch.zeros(2)]]
    tgt_m = [[torch.ones(4)], [torch.zeros(2), torch.zeros(2)]]
    src_v = [[torch.ones(4)], [torch.ones(2), torch.ones(2)]]
    zeta = torch.tensor([0.25, 0.75])
    # source 0 is off by ‖1‖ over 4 channels = 2, weighted by its ζ
    assert float(losses.bn_stat_distance(src_m, src_v, tgt_m, src_v, zeta)) == pytest.approx(0.25 * 2)


def test_gradients():
    logits = torch.randn(4, 5, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: losses.entropy(x.softmax(1)), (logits,))
    assert torch.autograd.gradcheck(lambda x: losses.diversity(x.softmax(1)), (logits,))
    y = torch.tensor([0, 1, 2, 3])
    assert torch.autograd.gradcheck(lambda x: losses.pseudo_label_ce(x.softmax(1), y), (logits,))
    psi = [torch.randn(3, 4)]
    f = torch.randn(3, 4, requires_grad=True)
    z = torch.tensor([0.2, 0.8], requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, z: losses.ti_distance(psi * 2, [f, f], z), (f, z))
    sm, sv = _stats(2, [3, 4], 2), _stats(2, [3, 4], 3)
    tm = [[t.clone().requires_grad_() for t in layer] for layer in _stats(2, [3, 4], 4)]
    tv = [[t.clone() + 0.1 for t in layer] for layer in _stats(2, [3, 4], 5)]
    flat = [t for layer in tm for t in layer]
    assert torch.autograd.gradcheck(
        lambda *a: losses.bn_stat_distance(sm, sv, [list(a[:2]), list(a[2:])], tv, torch.tensor([0.4, 0.6])),
        tuple(flat))
    # the entropy pushes a slightly confident prediction towards more confidence
    x = torch.tensor([[0.2, 0.0]], requires_grad=True)
    losses.entropy(x.softmax(1)).backward()
    assert x.grad[0, 0] < 0 < x.grad[0, 1]
