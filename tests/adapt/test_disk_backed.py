"""Disk-backed runs (every decoded set in the disk cache) train exactly what in-memory runs train."""

import torch

from socketedge.adapt.config import AdaptConfig
from socketedge.adapt.run import Adapter, adapt
from socketedge.models.bundle import load_bundle
from socketedge.models.checkpoint import load_source
from socketedge.models.train import TrainSourceConfig, train_source


def _state(ensemble) -> dict:
    return {f"{k}.{n}": t for k, m in enumerate(ensemble.members) for n, t in m.model.state_dict().items()}


def test_adapt_in_memory_and_disk_backed_give_identical_weights(adapt_data, tmp_path, no_plots):
    sources, target, ti = adapt_data
    runs = {}
    for name, budget in (("memory", 1.0), ("disk", 0.0)):
        cfg = AdaptConfig(sources=sources, target=target / "depth", ti=ti, out=tmp_path / name, epochs=2,
                          batch_size=8, device="cpu", show_progress=False, memory_budget=budget,
                          cache_dir=tmp_path / "cache", seed=3)
        if name == "disk":  # every set the run decodes lives in the cache
            probe = Adapter(cfg.model_copy(update={"out": tmp_path / "probe"}))
            assert probe.target.on_disk and probe.ti_tgt.on_disk and probe.hold_src.on_disk
        runs[name] = adapt(cfg)
    mem, disk = (_state(load_bundle(runs[n].bundle)[0]) for n in ("memory", "disk"))
    assert mem.keys() == disk.keys()
    for n in mem:
        assert torch.equal(mem[n], disk[n]), n
    assert runs["memory"].metrics["zeta"] == runs["disk"].metrics["zeta"]
    assert runs["memory"].metrics["gap"] == runs["disk"].metrics["gap"]


def test_train_source_in_memory_and_disk_backed_give_identical_weights(make_dataset, tmp_path):
    data = make_dataset("src", per_class=6)
    out = {}
    for name, budget in (("memory", 1.0), ("disk", 0.0)):
        cfg = TrainSourceConfig(data=data, out=tmp_path / f"{name}.ckpt", arch="tiny_cnn", epochs=2, min_steps=0,
                                batch_size=8, device="cpu", show_progress=False, memory_budget=budget,
                                cache_dir=tmp_path / "cache")
        out[name] = load_source(train_source(cfg)[0]).state_dict()
    for n, t in out["memory"].items():
        assert torch.equal(t, out["disk"][n]), n
