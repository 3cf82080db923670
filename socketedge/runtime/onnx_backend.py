"""onnxruntime backend: CPU, CUDA or TensorRT execution providers, the model card from ``metadata_props``.

onnxruntime-gpu falls back to CPU without raising when the CUDA/cuDNN libraries are missing; the providers the
session reports after creation are the only truth, so they are what ``providers`` returns and what
``require_gpu`` checks. On a GPU, inputs and outputs go through IOBinding (one host→device copy of the frame,
outputs allocated by onnxruntime and copied back once).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from socketedge.errors import ConfigError, DeviceError, ModelError, short
from socketedge.export.metadata import (INPUT_NAME, ORT_DISABLED_OPTIMIZERS, OUTPUT_LABEL, OUTPUT_PROBS, PREFIX,
                                        ModelCard)
from socketedge.runtime.backends import Backend, check_probs, free_cores, register_backend

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
GPU_PROVIDERS = (TENSORRT, CUDA, "ROCMExecutionProvider", "DmlExecutionProvider", "MIGraphXExecutionProvider")
GPU_HINT = ("install the GPU build: `pip uninstall -y onnxruntime && pip install 'socketedge[gpu]'` "
            "(check with `socketedge doctor`)")


def provider_chain(provider: str, available: list[str], require_gpu: bool = False) -> list[str]:
    """The providers to ask onnxruntime for, most preferred first, given what this build says it has.

    auto = CUDA when the build has it, else CPU (TensorRT only when asked: its first run builds engines for
    minutes). An explicit GPU provider the build lacks is an error rather than a silent CPU run.
    """
    if provider == "cpu":
        if require_gpu:
            raise ConfigError("--require-gpu contradicts --provider cpu; drop one of them")
        return [CPU]
    if provider == "auto":
        chain = [p for p in (CUDA,) if p in available] + [CPU]
    elif provider == "cuda":
        if CUDA not in available:
            raise DeviceError(f"--provider cuda: this onnxruntime has no CUDAExecutionProvider "
                              f"(it has {', '.join(available)}); {GPU_HINT}")
        chain = [CUDA, CPU]
    elif provider == "tensorrt":
        if TENSORRT not in available:
            raise DeviceError(f"--provider tensorrt: this onnxruntime has no TensorrtExecutionProvider "
                              f"(it has {', '.join(available)}); {GPU_HINT} and TensorRT")
        chain = [TENSORRT] + [p for p in (CUDA,) if p in available] + [CPU]
    else:
        raise ConfigError(f"unknown provider {provider!r}; expected auto, cpu, cuda or tensorrt")
    if require_gpu and not any(p in GPU_PROVIDERS for p in chain):
        raise DeviceError(f"--require-gpu: onnxruntime offers no GPU execution provider here (only "
                          f"{', '.join(available)}); {GPU_HINT}")
    return chain


def read_card(session, where: Path) -> ModelCard:
    props = dict(session.get_modelmeta().custom_metadata_map)
    if not any(k.startswith(PREFIX) for k in props):
        raise ModelError(f"{where} carries no socketedge model card (metadata_props); export it with "
                         "`socketedge export` so class names and preprocessing travel with it")
    from socketedge.runtime.backends import card_from_json

    return card_from_json(props, str(where))


@register_backend("onnxruntime")
class OnnxRuntimeBackend(Backend):
    suffixes = (".onnx",)

    def __init__(self, model: Path, card: ModelCard, session, requested: list[str], iobinding: bool, threads: int):
        super().__init__(model, card)
        self.session = session
        self._providers = list(session.get_providers())  # fixed at creation; kept answerable after close
        self.requested = requested
        self._threads = threads
        self.output_names = [o.name for o in session.get_outputs()]
        self.input_type = session.get_inputs()[0].type  # e.g. 'tensor(uint16)'
        self.iobinding = iobinding
        self._io = session.io_binding() if iobinding else None
        self.warnings: list[str] = []

    @classmethod
    def open(cls, model: Path, provider: str = "auto", threads: int | None = None, require_gpu: bool = False,
             iobinding: bool | None = None) -> "OnnxRuntimeBackend":
        import onnxruntime as ort

        chain = provider_chain(provider, list(ort.get_available_providers()), require_gpu)
        threads = threads or free_cores()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # the fallback warning is reported by us, once, in plain words
        try:
            session = ort.InferenceSession(str(model), sess_options=opts, providers=chain,
                                           disabled_optimizers=ORT_DISABLED_OPTIMIZERS)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/NoSuchFile types
            raise ModelError(f"{model} is not a model onnxruntime can load ({short(e)}); export one with "
                             "`socketedge export`") from None
        card = read_card(session, model)
        names_in = [i.name for i in session.get_inputs()]
        names_out = [o.name for o in session.get_outputs()]
        if names_in != [INPUT_NAME] or OUTPUT_PROBS not in names_out:
            raise ModelError(f"{model} has inputs {names_in} and outputs {names_out}; expected input "
                             f"{INPUT_NAME!r} and output {OUTPUT_PROBS!r} — re-export with `socketedge export`")
        got = list(session.get_providers())
        on_gpu = any(p in GPU_PROVIDERS for p in got)
        self = cls(model, card, session, chain, iobinding if iobinding is not None else on_gpu, threads)
        wanted_gpu = [p for p in chain if p in GPU_PROVIDERS]
        lost = [p for p in wanted_gpu if p not in got]
        if lost:
            message = (f"onnxruntime was asked for {', '.join(lost)} but the session runs on {', '.join(got)} "
                       "(CUDA / cuDNN / TensorRT libraries not found or incompatible)")
            if require_gpu or (provider in ("cuda", "tensorrt") and not on_gpu):
                raise DeviceError(f"{message}; check `socketedge doctor`, or use --provider cpu")
            self.warnings.append(message)
        if require_gpu and not on_gpu:
            raise DeviceError(f"--require-gpu: the onnxruntime session runs on {', '.join(got)} only; {GPU_HINT}")
        return self

    @property
    def providers(self) -> list[str]:
        return list(self._providers)

    @property
    def on_gpu(self) -> bool:
        return any(p in GPU_PROVIDERS for p in self.providers)

    @property
    def threads(self) -> int | None:
        return None if self.on_gpu else self._threads

    def _cast(self, frames: np.ndarray) -> np.ndarray:
        want = {"tensor(uint16)": np.uint16, "tensor(uint8)": np.uint8, "tensor(float)": np.float32,
                "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(float16)": np.float16}
        dtype = want.get(self.input_type)
        if dtype is None:
            raise ModelError(f"{self.model} expects {self.input_type} frames, which socketedge cannot feed")
        if frames.dtype != dtype:
            frames = frames.astype(dtype)
        return np.ascontiguousarray(frames)

    def infer(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self._cast(frames)
        if self._io is not None:
            io = self._io
            io.clear_binding_inputs()
            io.clear_binding_outputs()
            io.bind_cpu_input(INPUT_NAME, x)
            for name in self.output_names:
                io.bind_output(name, "cpu")  # (N, C) probabilities: one small copy back
            self.session.run_with_iobinding(io)
            outputs = dict(zip(self.output_names, io.copy_outputs_to_cpu()))
        else:
            outputs = dict(zip(self.output_names, self.session.run(None, {INPUT_NAME: x})))
        probs = np.asarray(outputs[OUTPUT_PROBS], dtype=np.float32)
        check_probs(probs, self.card, str(self.model))
        label = outputs.get(OUTPUT_LABEL)
        label = probs.argmax(1).astype(np.int64) if label is None else np.asarray(label, np.int64)
        return probs, label

    def close(self) -> None:
        self._io = None
        self.session = None  # drops the native session (and its GPU memory)
