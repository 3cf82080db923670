import json

import pytest
import torch

from socketedge.adapt.config import AdaptConfig
from socketedge.adapt.run import AdaptInterrupted, adapt
from socketedge.models.bundle import load_bundle
from socketedge.models.checkpoint import load_source, save_source
from socketedge.models.source_model import new_source_model


@pytest.fixture
def setup(adapt_data, make_dataset):
    sources, target, ti = adapt_data
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

    def interrupt_mid(step):
        if step == 4:  # 3 steps per epoch (24 images, batch 8): step 4 is inside epoch 2
            raise KeyboardInterrupt

    cfg = _cfg(setup, tmp_path, out=tmp_path / "resumed")
    with pytest.raises(AdaptInterrupted, match="--resume"):
        adapt(cfg, on_step=interrupt_mid)
    assert (tmp_path / "resumed" / "resume.pt").exists()
    assert not (tmp_path / "resumed" / "bundle.json").exists()
    resumed = adapt(cfg.model_copy(update={"resume": True}))
    a, _ = load_bundle(full.bundle)
    b, _ = load_bundle(resumed.bundle)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    assert full.metrics["history"] == resumed.metrics["history"]


def test_bad_inputs_are_one_line(setup, tmp_path, make_dataset, cli):
    sources, target, ti, _ = setup
    base = ["adapt", "--source", sources[0], "--target", target / "depth", "--epochs", "1", "--device", "cpu"]
    # TI folder without pairs
    nopairs = make_dataset("nopairs", classes=("e",), per_class=2, modalities=("rgb",))
    r = cli(*base, "--ti", nopairs, "--out", tmp_path / "o1")
    assert r.exit_code == 1 and "paired folder" in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    # sources with different class lists
    other = save_source(new_source_model("tiny_cnn", ["a", "b", "x", "y"]), tmp_path / "other.ckpt")
    r = cli(*base, "--source", other, "--ti", ti, "--out", tmp_path / "o2")
    assert r.exit_code == 1 and "share one class list" in r.stderr
    # empty target
    (tmp_path / "empty" / "depth").mkdir(parents=True)
    r = cli("adapt", "--source", sources[0], "--target", tmp_path / "empty" / "depth", "--ti", ti, "--out",
            tmp_path / "o3")
    assert r.exit_code == 1 and "is empty" in r.stderr
    # TI holding task classes
    bad_ti = make_dataset("badti", classes=("a", "e"), per_class=2, modalities=("rgb", "depth"))
    r = cli(*base, "--ti", bad_ti, "--out", tmp_path / "o4")
    assert r.exit_code == 1 and "task classes ['a']" in r.stderr
    # shot with two sources; socket without --ti
    r = cli(*base, "--source", sources[1], "--method", "shot", "--out", tmp_path / "o5")
    assert r.exit_code == 1 and "exactly one source" in r.stderr
    r = cli(*base, "--out", tmp_path / "o6")
    assert r.exit_code == 1 and "--ti DIR" in r.stderr
    for i in range(1, 7):
        assert not (tmp_path / f"o{i}" / "bundle.json").exists()


def test_model_without_batchnorm_under_socket(make_dataset, tmp_path, cli):
    from socketedge.models.backbones import get_backbone
    from socketedge.models.source_model import wrap_torchvision_classifier

    net = get_backbone("tiny_cnn_nobn").classifier(4)
    src = save_source(wrap_torchvision_classifier("tiny_cnn_nobn", net.state_dict(), list("abcd")),
                      tmp_path / "nobn.ckpt")
    target = make_dataset("t", per_class=4, modalities=("depth",), labeled=False)
    ti = make_dataset("ti2", classes=("e", "f"), per_class=4, modalities=("rgb", "depth"))
    r = cli("adapt", "--source", src, "--target", target / "depth", "--ti", ti, "--out", tmp_path / "b",
            "--epochs", "1")
    assert r.exit_code == 1 and "has no BatchNorm layer" in r.stderr
    assert not (tmp_path / "b" / "bundle.json").exists()
    r = cli("adapt", "--source", src, "--target", target / "depth", "--ti", ti, "--out", tmp_path / "b",
            "--epochs", "1", "--lambda-d", "0", "--batch-size", "4")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "b" / "bundle.json").exists()


def test_sigterm_without_torchrun_checkpoints_like_ctrl_c(setup, tmp_path):
    """Regression (issue 13, item 8): `docker stop` / `systemctl stop` send SIGTERM; a plain (non-torchrun) adapt
    used to die with 143 and lose the epoch. Now the step finishes, a checkpoint is written, and --resume reaches
    the same weights as an uninterrupted run."""
    import os
    import signal

    full = adapt(_cfg(setup, tmp_path, out=tmp_path / "full"))

    def sigterm_mid(step):
        if step == 4:  # inside epoch 2 (3 steps per epoch)
            os.kill(os.getpid(), signal.SIGTERM)

    missed = []  # a SIGTERM adapt did not handle lands here (instead of killing the test process)
    previous = signal.signal(signal.SIGTERM, lambda *_: missed.append(1))
    try:
        cfg = _cfg(setup, tmp_path, out=tmp_path / "resumed")
        with pytest.raises(AdaptInterrupted, match="--resume"):
            adapt(cfg, on_step=sigterm_mid)
        assert not missed
    finally:
        signal.signal(signal.SIGTERM, previous)
    state = torch.load(tmp_path / "resumed" / "resume.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == (1, 1)  # the step in flight was finished, not cut
    resumed = adapt(cfg.model_copy(update={"resume": True}))
    a, _ = load_bundle(full.bundle)
    b, _ = load_bundle(resumed.bundle)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def test_sigterm_exits_130_through_the_cli(adapt_data, tmp_path):
    """The real process: SIGTERM mid-run → one message naming --resume, exit code 130, checkpoint on disk."""
    import os
    import signal
    import subprocess
    import sys
    import time

    sources, target, ti = adapt_data
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "socketedge", "adapt", "--source", str(sources[0]), "--target",
                             str(target / "depth"), "--ti", str(ti), "--out", str(out), "--epochs", "1000",
                             "--batch-size", "8", "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    deadline = time.monotonic() + 180
    while not (out / "resume.pt").exists():  # written after the first epoch: the loop is running
        assert proc.poll() is None, proc.stderr.read().decode()[-800:]
        assert time.monotonic() < deadline, "adapt wrote no checkpoint in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-800:]
    assert "--resume" in err.decode() and "Traceback" not in err.decode()
    state = torch.load(out / "resume.pt", weights_only=True)
    assert state["epoch"] < 1000 and not (out / "bundle.json").exists()
