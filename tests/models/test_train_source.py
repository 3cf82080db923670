import json

import torch

from socketedge.models.checkpoint import load_source
from socketedge.models.train import TrainSourceConfig, poly_lr, train_source


def test_poly_lr_schedule():
    assert poly_lr(1e-2, 0.0) == 1e-2
    assert abs(poly_lr(1e-2, 1.0) - 1e-2 * 11 ** -0.75) < 1e-12


def test_train_source_beats_chance_and_keeps_a_real_copy_of_the_best(make_dataset, tmp_path):
    data = make_dataset("src", per_class=20)
    cfg = TrainSourceConfig(data=data, out=tmp_path / "s.ckpt", arch="tiny_cnn", epochs=6, batch_size=16,
                            show_progress=False)
    path, result = train_source(cfg)
    assert result["best"]["val_accuracy"] > 50  # 4 classes: chance is 25%
    model = load_source(path)
    assert model.meta.class_names == ["a", "b", "c", "d"]
    assert model.meta.train_config["arch"] == "tiny_cnn"
    # The saved weights are the best epoch's, not the last epoch's (a copy, not live tensors).
    best_epoch = result["best"]["epoch"]
    assert model.meta.metrics["history"][best_epoch - 1]["val_accuracy"] == result["best"]["val_accuracy"]


def test_train_source_cli_and_eval_matches_hand_computation(make_dataset, tmp_path, cli):
    data = make_dataset("src", per_class=12)
    ev = make_dataset("ev", per_class=5, seed=7)
    r = cli("train-source", "--data", data, "--arch", "tiny_cnn", "--out", tmp_path / "s.ckpt", "--epochs", "2",
            "--batch-size", "16")
    assert r.exit_code == 0, r.stderr
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
