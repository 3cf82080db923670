import json

import torch

from socketedge.models.checkpoint import load_source
from socketedge.models.train import MIN_BATCH, TrainSourceConfig, choose_kept, poly_lr, schedule_for, train_source


def test_poly_lr_schedule():
    assert poly_lr(1e-2, 0.0) == 1e-2
    assert abs(poly_lr(1e-2, 1.0) - 1e-2 * 11 ** -0.75) < 1e-12


def test_schedule_for_small_sets_gets_several_steps_per_epoch_and_min_steps():
    s = schedule_for(18, 64, 20, 500)  # a 20-image set after its 10% validation split
    assert s["batch_size"] == MIN_BATCH and s["steps_per_epoch"] == 2
    assert s["steps"] == s["epochs"] * s["steps_per_epoch"] >= 500
    s = schedule_for(97, 64, 20, 500)  # the 108-image class split of the issue: it ran 20 steps
    assert (s["batch_size"], s["steps_per_epoch"], s["epochs"], s["steps"]) == (24, 4, 125, 500)
    assert schedule_for(5, 64, 20, 0) == {"batch_size": 5, "epochs": 20, "steps_per_epoch": 1, "steps": 20}
    assert schedule_for(97, 16, 3, 0)["batch_size"] == 16  # --batch-size stays an upper bound
    assert schedule_for(97, 64, 3, 0)["epochs"] == 3  # min_steps 0: just the requested epochs


def test_schedule_for_a_large_set_is_the_original_recipe():
    for n in (1600, 5000):
        s = schedule_for(n, 64, 20, 500)
        assert (s["batch_size"], s["epochs"], s["steps_per_epoch"]) == (64, 20, n // 64)


def test_choose_kept():
    assert choose_kept("auto", 11, 100) == "final"  # a dozen validation images cannot rank epochs
    assert choose_kept("auto", 100, 100) == "best"
    assert choose_kept("best", 11, 100) == "best" and choose_kept("final", 500, 100) == "final"


def test_a_20_image_set_runs_min_steps_and_the_schedule_spans_them(make_dataset, tmp_path, monkeypatch):
    import socketedge.models.train as train

    seen = []
    real_set_lr = train.set_lr
    monkeypatch.setattr(train, "set_lr", lambda opt, progress: (seen.append(progress), real_set_lr(opt, progress)))
    data = make_dataset("src", per_class=5)  # 4 classes × 5 = 20 images: 18 train, 2 val
    path, result = train_source(TrainSourceConfig(data=data, out=tmp_path / "s.ckpt", arch="tiny_cnn",
                                                  input_size=32, epochs=3, min_steps=41, show_progress=False))
    s = result["schedule"]  # batch 8: 2 steps an epoch, 21 epochs (not 3) to reach 41 steps
    assert result["num_train"] == 18 and s["steps_per_epoch"] >= 2 and s["epochs"] > 3 and s["steps"] >= 41
    # the poly schedule runs over the real total: one LR update per step, from p = 0 up to (total - 1) / total
    assert len(seen) == s["steps"] and seen[0] == 0 and seen[-1] == (s["steps"] - 1) / s["steps"]
    assert len(result["history"]) == s["epochs"]
    meta = load_source(path).meta
    assert meta.train_config["effective"] == s and meta.train_config["kept"] == "final"
    assert meta.metrics["final"]["epoch"] == s["epochs"]


def _val_loss(path, data, seed=0):
    """Cross-entropy of a saved checkpoint on train-source's validation split of ``data``."""
    from socketedge.data.cache import decode_set, split_indices
    from socketedge.data.folders import labeled_folder
    from socketedge.data.preprocess import preprocessing_for
    from socketedge.models.ensemble import Member
    from socketedge.models.predict import predict

    model = load_source(path)
    images = labeled_folder(data, "rgb")
    val_idx, _ = split_indices(len(images), [0.1, 0.9], seed)
    val = decode_set(images.subset(val_idx), model.meta.input_size, show_progress=False)
    logits = predict([Member(model, preprocessing_for(model.meta, "rgb"))], val.raw).member_logits[0]
    return torch.nn.functional.cross_entropy(logits, val.labels).item()


def test_kept_weights_follow_the_selection_rule(make_dataset, tmp_path):
    data = make_dataset("src", per_class=20)  # 80 images: 8 validation images
    runs = {}
    for name, kw in {"auto": {}, "auto_low_bar": {"best_min_val": 8}}.items():
        cfg = TrainSourceConfig(data=data, out=tmp_path / f"{name}.ckpt", arch="tiny_cnn", input_size=32,
                                epochs=4, min_steps=0, batch_size=16, show_progress=False, **kw)
        runs[name] = train_source(cfg)
    path, result = runs["auto"]
    assert result["kept"] == "final" and result["num_val"] == 8
    assert abs(_val_loss(path, data) - result["history"][-1]["val_loss"]) < 1e-4  # the final weights
    assert result["final"] == {k: result["history"][-1][k] for k in ("val_accuracy", "val_loss", "epoch")}
    path, result = runs["auto_low_bar"]  # 8 validation images ≥ best_min_val: rank the epochs
    best = result["best"]
    assert result["kept"] == "best"
    accs = [h["val_accuracy"] for h in result["history"]]
    assert best["epoch"] == accs.index(max(accs)) + 1 and best["val_accuracy"] > 50  # 4 classes: chance 25%
    assert best["epoch"] < len(accs)  # so best and final weights differ and the two checks tell them apart
    # the checkpoint holds a real copy of the best epoch's weights, not the live (final) tensors
    assert abs(_val_loss(path, data) - result["history"][best["epoch"] - 1]["val_loss"]) < 1e-4
    meta = load_source(path).meta
    assert meta.class_names == ["a", "b", "c", "d"] and meta.train_config["arch"] == "tiny_cnn"


def test_train_source_cli_and_eval_matches_hand_computation(make_dataset, tmp_path, cli):
    data = make_dataset("src", per_class=12)
    ev = make_dataset("ev", per_class=5, seed=7)
    r = cli("train-source", "--data", data, "--arch", "tiny_cnn", "--out", tmp_path / "s.ckpt", "--epochs", "2",
            "--batch-size", "16", "--min-steps", "0", "--select", "final")
    assert r.exit_code == 0, r.stderr
    assert "batch 10 × 2 epochs = 8 steps; kept the final weights" in " ".join(r.stderr.split())
    r = cli("eval", tmp_path / "s.ckpt", "--data", ev, "--json", "--out", tmp_path / "ev")
    assert r.exit_code == 0, r.stderr
    metrics = json.loads(r.stdout)
    # Hand computation: decode, preprocess, argmax, compare.
    from socketedge.data.imageio import read_image
    from socketedge.data.preprocess import preprocessing_for

    model = load_source(tmp_path / "s.ckpt")
    prep = preprocessing_for(model.meta, "rgb").module()
    correct = total = 0
    per_class = {}
    for ci, cname in enumerate(model.meta.class_names):
        hits = 0
        files = sorted((ev / cname).glob("*.png"))
        for f in files:
            import cv2

            img = cv2.resize(read_image(f, "rgb"), (32, 32), interpolation=cv2.INTER_AREA)
            x = torch.from_numpy(img).permute(2, 0, 1)[None]
            with torch.no_grad():
                hits += int(model(prep(x)).argmax(1).item() == ci)
        per_class[cname] = 100.0 * hits / len(files)
        correct += hits
        total += len(files)
    assert metrics["n"] == total
    assert abs(metrics["accuracy"] - 100.0 * correct / total) < 1e-9
    assert metrics["per_class_accuracy"] == per_class
    assert sum(map(sum, metrics["confusion"])) == total
    assert (tmp_path / "ev" / "confusion.png").stat().st_size > 0
    assert len((tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()) == total


def test_train_source_cli_unknown_select_is_a_one_line_error(make_dataset, tmp_path, cli):
    data = make_dataset("src", per_class=2)
    r = cli("train-source", "--data", data, "--arch", "tiny_cnn", "--out", tmp_path / "s.ckpt", "--select", "top")
    assert r.exit_code != 0
    assert "unknown --select 'top'; expected one of auto, best, final" in r.stderr
    assert "Traceback" not in r.stderr
