"""Backend registry and selection: providers (with onnxruntime's silent CPU fallback simulated), --require-gpu,
model cards, IOBinding, the torch and TensorRT backends."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from runtime_fixtures import CLASSES, class_frames, contract_card, reference_probs, write_contract_onnx

from socketedge.errors import ConfigError, DeviceError, MissingExtraError, ModelError, UnknownNameError
from socketedge.runtime.backends import backend_for, open_backend, parse_backend_spec
from socketedge.runtime.onnx_backend import CPU, CUDA, TENSORRT, provider_chain

CPU_ONLY = ["AzureExecutionProvider", CPU]
GPU_BUILD = [TENSORRT, CUDA, CPU]


def test_runtime_imports_without_torch():
    code = ("import sys, socketedge.runtime, socketedge.runtime.bench, socketedge.cli.run, socketedge.cli.bench;"
            "from socketedge.runtime.backends import backend_names; backend_names();"
            "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("provider,available,require_gpu,expected", [
    ("auto", CPU_ONLY, False, [CPU]),
    ("auto", GPU_BUILD, False, [CUDA, CPU]),
    ("auto", GPU_BUILD, True, [CUDA, CPU]),
    ("cpu", GPU_BUILD, False, [CPU]),
    ("cuda", GPU_BUILD, False, [CUDA, CPU]),
    ("tensorrt", GPU_BUILD, False, [TENSORRT, CUDA, CPU]),
])
def test_provider_chain(provider, available, require_gpu, expected):
    assert provider_chain(provider, available, require_gpu) == expected


@pytest.mark.parametrize("provider,require_gpu,error", [
    ("auto", True, DeviceError), ("cuda", False, DeviceError), ("tensorrt", False, DeviceError),
    ("cpu", True, ConfigError), ("gpu", False, ConfigError)])
def test_provider_chain_refuses_what_the_build_lacks(provider, require_gpu, error):
    with pytest.raises(error) as e:
        provider_chain(provider, CPU_ONLY, require_gpu)
    assert "\n" not in str(e.value)


def test_onnx_backend_matches_reference_and_reports_providers(onnx_model):
    with open_backend(onnx_model, threads=1) as b:
        assert b.name == "onnxruntime" and b.providers == [CPU] and not b.on_gpu and b.threads == 1
        assert b.class_names == CLASSES and b.precision == "fp32"
        frames = class_frames(8)
        batch = np.stack([f.depth[None] for f in frames])
        probs, label = b.infer(batch)
        assert probs.dtype == np.float32 and label.dtype == np.int64 and probs.shape == (8, 4)
        np.testing.assert_allclose(probs, np.stack([reference_probs(f.depth) for f in frames]), atol=1e-5)
        assert [CLASSES[i] for i in label] == [f.label for f in frames]


def test_iobinding_path_gives_the_same_answer(onnx_model):
    frames = np.stack([f.depth[None] for f in class_frames(4)])
    with open_backend(onnx_model) as plain, open_backend(onnx_model, iobinding=True) as bound:
        assert bound.iobinding and not plain.iobinding
        for _ in range(2):  # the binding is reused between calls
            np.testing.assert_array_equal(plain.infer(frames)[0], bound.infer(frames)[0])


def test_silent_cuda_fallback_is_reported(onnx_model, monkeypatch):
    """A GPU build whose CUDA libraries are missing: onnxruntime accepts CUDAExecutionProvider and runs on CPU.
    Simulated by advertising CUDA on this CPU build, which then falls back exactly like that."""
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: GPU_BUILD)
    with open_backend(onnx_model, provider="auto") as b:  # auto: a warning, and the truth in providers
        assert b.providers == [CPU] and not b.on_gpu
        assert b.warnings and "CUDAExecutionProvider" in b.warnings[0] and "CPUExecutionProvider" in b.warnings[0]
    with pytest.raises(DeviceError, match="runs on CPUExecutionProvider"):
        open_backend(onnx_model, provider="auto", require_gpu=True)
    with pytest.raises(DeviceError, match="asked for CUDAExecutionProvider"):
        open_backend(onnx_model, provider="cuda")


def test_require_gpu_on_a_cpu_build(onnx_model, monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: CPU_ONLY)
    with pytest.raises(DeviceError, match=r"socketedge\[gpu\]"):
        open_backend(onnx_model, require_gpu=True)


def test_backend_spec_and_registry_errors(onnx_model, tmp_path):
    assert parse_backend_spec("onnxruntime-cuda") == ("onnxruntime", "cuda")
    assert parse_backend_spec("ort") == ("onnxruntime", None)
    with pytest.raises(UnknownNameError, match="did you mean 'onnxruntime'"):
        open_backend(onnx_model, backend="onnxruntme")
    with pytest.raises(ModelError, match="torch backend cannot open"):
        open_backend(onnx_model, backend="torch")
    with pytest.raises(ModelError, match="does not exist"):
        open_backend(tmp_path / "missing.onnx")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelError, match="cannot tell how to run"):
        backend_for(tmp_path / "notes.txt")
    (tmp_path / "model.engine").write_bytes(b"\0")
    assert backend_for(tmp_path / "model.engine") == "tensorrt"


def test_model_without_card_is_refused(tmp_path):
    path = write_contract_onnx(tmp_path / "bare.onnx", with_card=False)
    with pytest.raises(ModelError, match="no socketedge model card"):
        open_backend(path)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a model onnxruntime can load"):
        open_backend(tmp_path / "junk.onnx")


def test_engine_card_is_read_from_the_sidecar(tmp_path):
    from socketedge.runtime.tensorrt_backend import read_sidecar

    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0")
    with pytest.raises(ModelError, match="no sidecar card"):
        read_sidecar(engine)
    card = contract_card(precision="fp16")
    (tmp_path / "model.engine.json").write_text(card.model_dump_json())
    assert read_sidecar(engine) == card
    (tmp_path / "model.engine.json").write_text(json.dumps(card.to_props()))  # the props form is read too
    assert read_sidecar(engine) == card


def test_tensorrt_backend_without_tensorrt_names_the_extra(tmp_path):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here; the missing-extra path cannot be shown")
    except ImportError:
        pass
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0")
    (tmp_path / "model.engine.json").write_text(contract_card().model_dump_json())
    with pytest.raises(MissingExtraError, match=r"socketedge\[tensorrt\]"):
        open_backend(engine)
    with pytest.raises(DeviceError, match="GPU only"):
        open_backend(engine, provider="cpu")


@pytest.fixture
def tiny_bundle(tmp_path):
    import torch

    from socketedge.data.preprocess import preprocessing_for
    from socketedge.models.bundle import save_bundle
    from socketedge.models.ensemble import Ensemble, Member
    from socketedge.models.source_model import new_source_model

    torch.manual_seed(0)
    model = new_source_model("tiny_cnn", CLASSES, input_size=32).eval()
    ensemble = Ensemble([Member(model, preprocessing_for(model.meta, "depth"))])
    return save_bundle(tmp_path / "bundle", ensemble, "shot", {}), ensemble


def test_torch_backend_runs_a_bundle_with_its_card(tiny_bundle):
    import torch

    path, ensemble = tiny_bundle
    frames = np.stack([f.depth[None] for f in class_frames(4)])
    with open_backend(path, provider="cpu", threads=1) as b:
        assert b.name == "torch" and b.card.modality == "depth" and b.card.input_dtype == "uint16"
        assert b.card.method == "shot" and b.class_names == CLASSES
        probs, label = b.infer(frames)
    with torch.no_grad():
        want = ensemble.eval()(torch.from_numpy(frames.astype(np.int32))).numpy()
    np.testing.assert_allclose(probs, want, atol=1e-6)
    assert (label == want.argmax(1)).all()


def test_torch_backend_require_gpu_without_cuda(tiny_bundle, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        open_backend(tiny_bundle[0], require_gpu=True)


@pytest.mark.cuda
def test_onnxruntime_cuda_really_runs_on_the_gpu(onnx_model):
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        pytest.skip("onnxruntime here has no CUDAExecutionProvider (install socketedge[gpu] on a CUDA machine)")
    with open_backend(onnx_model, provider="cuda", require_gpu=True) as gpu, open_backend(onnx_model, "cpu") as cpu:
        assert gpu.on_gpu and gpu.iobinding and gpu.threads is None
        frames = np.stack([f.depth[None] for f in class_frames(8)])
        np.testing.assert_allclose(gpu.infer(frames)[0], cpu.infer(frames)[0], atol=1e-5)
