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
    with pytest.raises(ConfigError, match="NEAR < FAR"):
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


def test_training_decode_resizes_as_the_graph_does(tmp_path):
    """decode_set's resize is the graph's (up to rounding to the raw dtype), and it averages rather than
    point-samples a large downscale."""
    import numpy as np

    from socketedge.data.cache import decode_set
    from socketedge.data.folders import labeled_folder
    from socketedge.data.imageio import write_image
    from socketedge.data.preprocess import Preprocess, Preprocessing, resize

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)  # fine detail: aliasing would show
    write_image(tmp_path / "a" / "x.png", frame)
    write_image(tmp_path / "b" / "y.png", frame[::-1].copy())
    decoded = decode_set(labeled_folder(tmp_path, "rgb"), 16, None, False).raw
    native = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    graph = resize(native, 16)
    assert (decoded[:1].float() - graph).abs().max() <= 0.5 + 1e-4
    spec = Preprocessing(modality="rgb", input_size=16, mean=(0, 0, 0), std=(1, 1, 1))
    fed = Preprocess(spec)(native)
    assert torch.allclose(fed, graph / 255, atol=1e-6)
    # uniform noise averaged over ~7×7 pixels per output: far smoother than point sampling would leave it
    assert float(graph.std()) < 0.35 * float(native.std())


def test_decoded_frames_reach_the_model_as_native_frames_do(tmp_path):
    """What training, the TI pairs and the held-out pairs feed the encoder (frames decoded at the input size,
    Preprocess(sized=True)) is what `eval`, `run` and the exported graph feed it (native frames, Preprocess()),
    up to the decoder's rounding to the raw dtype. Resizing the decoded frames again is not the identity: it
    blurs them by far more than the rounding."""
    import numpy as np

    from socketedge.data.cache import decode_set
    from socketedge.data.folders import target_folder
    from socketedge.data.imageio import write_image
    from socketedge.data.preprocess import Preprocess, Preprocessing

    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (96, 128), dtype=np.uint8)
    write_image(tmp_path / "thermal" / "x.png", frame)
    spec = Preprocessing(modality="thermal", input_size=24, mean=(0, 0, 0), std=(1, 1, 1))
    pre = Preprocess(spec)
    decoded = decode_set(target_folder(tmp_path / "thermal", "thermal"), 24, None, False).raw
    native = pre(torch.from_numpy(frame)[None, None])
    rounding = 0.5 / 255 + 1e-6
    assert (pre(decoded, sized=True) - native).abs().max() <= rounding
    assert (pre(decoded) - native).abs().max() > 10 * rounding  # the old double resize
    # frames at another size than the input (a second source with a smaller input) are still resized
    assert pre(decode_set(target_folder(tmp_path / "thermal", "thermal"), 32, None, False).raw,
               sized=True).shape[-1] == 24
