import pickle

import pytest
import torch
import torchvision

from socketedge.errors import ModelError
from socketedge.models.checkpoint import load_source, save_source
from socketedge.models.importing import import_source
from socketedge.models.source_model import new_source_model


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = new_source_model("tiny_cnn", ["a", "b", "c"])
    model.train()
    model(torch.randn(8, 3, 32, 32))  # move BN running statistics away from their defaults
    model.eval()
    path = save_source(model, tmp_path / "m.ckpt")
    loaded = load_source(path)
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(model(x), loaded(x))
    assert loaded.meta.class_names == ["a", "b", "c"]
    assert loaded.meta.versions["torch"] == torch.__version__.split("+")[0]


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_loading_refuses_a_pickle_payload(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"weights": _Payload()}, f)
    with pytest.raises(ModelError, match="not a socketedge checkpoint"):
        load_source(path)
    assert not (tmp_path / "PWNED").exists()


def test_torch_pickle_weights_refused_by_import_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"fc.weight": _Payload()}, tmp_path / "evil.pth")
    (tmp_path / "classes.txt").write_text("a\nb\n")
    with pytest.raises(ModelError, match="never unpickles them"):
        import_source("resnet18", tmp_path / "evil.pth", tmp_path / "classes.txt", tmp_path / "x.ckpt")
    assert not (tmp_path / "PWNED").exists()


def test_architecture_mismatch_is_one_clear_line(tmp_path):
    model = new_source_model("tiny_cnn", ["a", "b"])
    path = save_source(model, tmp_path / "m.ckpt")
    # Tamper with the metadata: claim a different architecture.
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["socketedge"] = meta["socketedge"].replace('"tiny_cnn"', '"tiny_cnn_wide"')
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ModelError, match="do not match architecture 'tiny_cnn_wide'") as e:
        load_source(path)
    assert "\n" not in str(e.value)


def test_import_source_wraps_torchvision_classifier(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(num_classes=3).eval()
    torch.save({"state_dict": {f"module.{k}": v for k, v in tv.state_dict().items()}}, tmp_path / "w.pth")
    (tmp_path / "classes.txt").write_text("cat\ndog\nfox\n")
    path, model = import_source("resnet18", tmp_path / "w.pth", tmp_path / "classes.txt", tmp_path / "s.ckpt")
    loaded = load_source(path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(tv(x), loaded(x), atol=1e-5)
    assert loaded.meta.split == "last_linear" and loaded.meta.feature_dim == 512


def test_import_source_class_count_mismatch(tmp_path, cli):
    tv = torchvision.models.resnet18(num_classes=3)
    torch.save(tv.state_dict(), tmp_path / "w.pth")
    (tmp_path / "classes.txt").write_text("a\nb\n")
    r = cli("import-source", "--arch", "resnet18", "--weights", tmp_path / "w.pth", "--classes",
            tmp_path / "classes.txt", "--out", tmp_path / "s.ckpt")
    assert r.exit_code == 1
    assert "3 outputs but 2 class names" in r.stderr
    assert not (tmp_path / "s.ckpt").exists()


def test_import_source_wrong_arch(tmp_path, cli):
    tv = torchvision.models.resnet18(num_classes=2)
    torch.save(tv.state_dict(), tmp_path / "w.pth")
    (tmp_path / "classes.txt").write_text("a\nb\n")
    r = cli("import-source", "--arch", "mobilenet_v3_small", "--weights", tmp_path / "w.pth", "--classes",
            tmp_path / "classes.txt", "--out", tmp_path / "s.ckpt")
    assert r.exit_code == 1 and "do not match architecture 'mobilenet_v3_small'" in r.stderr
