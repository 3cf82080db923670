import pytest
import torch

from socketedge.data.cache import apply_crop, crop_flip_indices
from socketedge.data.preprocess import Preprocessing
from socketedge.errors import ConfigError


def _spec(**kw):
    base = dict(modality="depth", input_size=4, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return Preprocessing(**(base | kw))


def test_depth_units_to_metres_clip_and_normalise():
    p = _spec(depth_scale=0.001, depth_near=1.0, depth_far=3.0).module()
    raw = torch.tensor([0, 1000, 2000, 3000, 9000], dtype=torch.uint16).view(1, 1, 1, 5)
    assert torch.allclose(p.unit(raw).flatten(), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    out = p(torch.full((2, 1, 8, 8), 2000, dtype=torch.uint16))
    assert out.shape == (2, 3, 4, 4)
    assert torch.allclose(out, torch.zeros_like(out))  # 0.5 normalised by mean 0.5 → 0, on all 3 channels


def test_depth_scale_changes_units():
    p = _spec(depth_scale=0.0001, depth_near=0.0, depth_far=1.0).module()  # 0.1 mm units (e.g. L515 at 1/4 mm)
    assert float(p.unit(torch.tensor([[[[5000]]]], dtype=torch.uint16))) == pytest.approx(0.5)


def test_eight_bit_modalities():
    p = _spec(modality="thermal").module()
    assert float(p.unit(torch.tensor([[[[255]]]], dtype=torch.uint8))) == 1.0


def test_invalid_range():
    with pytest.raises(ValueError):
        _spec(depth_near=3.0, depth_far=1.0)
    from socketedge.data.preprocess import preprocessing_for
    from socketedge.models.source_model import new_source_model

    meta = new_source_model("tiny_cnn", ["a", "b"]).meta
    with pytest.raises(ConfigError, match="near < far"):
        preprocessing_for(meta, "depth", depth_range=(5.0, 1.0))


def test_paired_crop_indices_keep_alignment():
    g = torch.Generator().manual_seed(0)
    a = torch.arange(2 * 1 * 10 * 10).view(2, 1, 10, 10)
    rows, cols = crop_flip_indices(2, 10, 6, g)
    ca, cb = apply_crop(a, rows, cols), apply_crop(a.clone(), rows, cols)
    assert torch.equal(ca, cb) and ca.shape == (2, 1, 6, 6)
    # each crop is a contiguous (possibly mirrored) window of its own image
    for i in range(2):
        r0 = int(rows[i, 0])
        window = a[i, 0, r0:r0 + 6]
        assert any(torch.equal(ca[i, 0], window[:, c:c + 6]) or torch.equal(ca[i, 0], window[:, c:c + 6].flip(1))
                   for c in range(5))
