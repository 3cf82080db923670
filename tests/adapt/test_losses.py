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


# ---------------------------------------------------------------------------------------- the scale-free forms
def test_scaled_ti_is_zero_when_matched_about_two_for_unrelated_and_scale_free():
    g = torch.Generator().manual_seed(0)
    psi = torch.randn(4000, 8, generator=g)
    other = torch.randn(4000, 8, generator=g)  # unrelated, equally spread
    spread = [losses.psi_spread(psi)]
    one = torch.tensor([1.0])
    assert float(losses.ti_distance_scaled([psi], [psi], one, spread)) == 0
    assert float(losses.ti_distance_scaled([psi], [other], one, spread)) == pytest.approx(2.0, rel=0.05)
    # the same features in other units give the same value: ζ cannot favour the network with smaller features
    big = [losses.psi_spread(psi * 1000)]
    assert float(losses.ti_distance_scaled([psi * 1000], [other * 1000], one, big)) == pytest.approx(
        float(losses.ti_distance_scaled([psi], [other], one, spread)), rel=1e-6)


def test_scaled_ti_weights_k_zeta_squared():
    psi = [torch.zeros(2, 3), torch.zeros(2, 3)]
    feats = [torch.ones(2, 3), torch.zeros(2, 3)]
    spread = [torch.tensor(3.0), torch.tensor(3.0)]  # source 0: ‖1‖² / 3 = 1 per pair; source 1 matches
    zeta = torch.tensor([0.25, 0.75])
    assert float(losses.ti_distance_scaled(psi, feats, zeta, spread)) == pytest.approx(2 * 0.25**2 * 1.0)


def test_psi_spread_is_floored_for_constant_features():
    psi = torch.ones(10, 4) * 2  # no spread at all: floor = 1e-2 × mean ‖ψ‖² = 1e-2 × 16
    assert float(losses.psi_spread(psi)) == pytest.approx(losses.SPREAD_FLOOR * 16)


def test_scaled_bn_zero_when_matched_and_one_per_std_of_shift_per_layer():
    src_m = [[torch.zeros(4), torch.zeros(6)]]
    src_v = [[torch.full((4,), 4.0), torch.full((6,), 0.25)]]
    one = torch.tensor([1.0])
    assert float(losses.bn_stat_distance_scaled(src_m, src_v, src_m, src_v, one)) == pytest.approx(0, abs=1e-5)
    # every channel of both layers shifted by one source standard deviation (2 and 0.5), variances equal
    tgt_m = [[torch.full((4,), 2.0), torch.full((6,), 0.5)]]
    value = float(losses.bn_stat_distance_scaled(src_m, src_v, tgt_m, src_v, one))
    floor = 1 + losses.VAR_FLOOR  # the floor is added to the source variance
    assert value == pytest.approx(2 / floor**0.5, rel=1e-4)
    # a variance ratio of e² in every channel of one layer: ½ log e² = 1
    tgt_v = [[src_v[0][0] * math.e**2, src_v[0][1]]]
    shift_free = float(losses.bn_stat_distance_scaled(src_m, src_v, src_m, tgt_v, one, var_floor=0.0))
    assert shift_free == pytest.approx(1.0, rel=1e-4)


def test_scaled_bn_is_unit_free_and_survives_dead_channels():
    g = torch.Generator().manual_seed(1)
    sm, sv = [[torch.randn(8, generator=g)]], [[torch.rand(8, generator=g) + 0.1]]
    tm, tv = [[torch.randn(8, generator=g)]], [[torch.rand(8, generator=g) + 0.1]]
    z = torch.tensor([1.0])
    a = losses.bn_stat_distance_scaled(sm, sv, tm, tv, z)
    s = 37.0  # the same activations in other units
    b = losses.bn_stat_distance_scaled([[sm[0][0] * s]], [[sv[0][0] * s * s]], [[tm[0][0] * s]],
                                       [[tv[0][0] * s * s]], z)
    assert float(a) == pytest.approx(float(b), rel=1e-4)
    dead = [[torch.cat([sv[0][0], torch.zeros(1)])]]  # a channel the source never activates
    value = losses.bn_stat_distance_scaled([[torch.cat([sm[0][0], torch.zeros(1)])]], dead,
                                           [[torch.cat([tm[0][0], torch.ones(1)])]],
                                           [[torch.cat([tv[0][0], torch.ones(1)])]], z)
    assert torch.isfinite(value) and float(value) < 100


def test_scaled_bn_weights_each_source_by_zeta():
    src_m = [[torch.zeros(4)], [torch.zeros(2), torch.zeros(2)]]
    src_v = [[torch.ones(4)], [torch.ones(2), torch.ones(2)]]
    tgt_m = [[torch.ones(4)], [torch.zeros(2), torch.zeros(2)]]
    zeta = torch.tensor([0.25, 0.75])
    value = float(losses.bn_stat_distance_scaled(src_m, src_v, tgt_m, src_v, zeta, var_floor=0.0))
    assert value == pytest.approx(0.25 * 1.0, rel=1e-4)


def test_scaled_gradients():
    psi = [torch.randn(3, 4)]
    f = torch.randn(3, 4, requires_grad=True)
    z = torch.tensor([0.2, 0.8], requires_grad=True)
    spread = [torch.tensor(2.0), torch.tensor(2.0)]
    assert torch.autograd.gradcheck(lambda f, z: losses.ti_distance_scaled(psi * 2, [f, f], z, spread), (f, z))
    sm, sv = _stats(2, [3, 4], 2), _stats(2, [3, 4], 3)
    tm = [[t.clone().requires_grad_() for t in layer] for layer in _stats(2, [3, 4], 4)]
    tv = [[(t.clone() + 0.1).requires_grad_() for t in layer] for layer in _stats(2, [3, 4], 5)]
    flat = [t for layer in tm for t in layer] + [t for layer in tv for t in layer]
    assert torch.autograd.gradcheck(
        lambda *a: losses.bn_stat_distance_scaled(sm, sv, [list(a[0:2]), list(a[2:4])], [list(a[4:6]), list(a[6:8])],
                                                  torch.tensor([0.4, 0.6])), tuple(flat))
