"""TensorRT engine backend (TensorRT 10 and 11 name-based tensor API), the model card from the sidecar JSON.

An engine is bound to the GPU model and TensorRT version it was built with, so it is built on the device
(``socketedge export --format tensorrt`` or trtexec) and shipped with its card as ``<engine>.json``. Device
memory and the stream come from the CUDA runtime through ctypes, so neither torch nor cuda-python is needed on
the device.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import json
import os
import sys
from pathlib import Path

import numpy as np

from socketedge.errors import DeviceError, ModelError, lazy_import
from socketedge.export.metadata import INPUT_NAME, OUTPUT_LABEL, OUTPUT_PROBS, ModelCard
from socketedge.runtime.backends import Backend, card_from_json, check_probs, register_backend

H2D, D2H = 1, 2  # cudaMemcpyKind


def read_sidecar(engine: Path) -> ModelCard:
    """The card `socketedge export` writes beside an engine (``model.engine.json``)."""
    from socketedge.export.tensorrt import sidecar_path  # the exporter owns the naming (imports onnx, not torch)

    path = sidecar_path(engine)
    if not path.is_file():
        raise ModelError(f"TensorRT engine {engine} has no sidecar card {path.name}; copy it from the export "
                         "folder (an engine alone carries no class names or preprocessing)")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"cannot read the engine card {path}: {e}") from None
    return card_from_json(data, str(path))


class CudaRuntime:
    """The few CUDA runtime calls inference needs, through ctypes (libcudart from the system or from pip)."""

    def __init__(self):
        self.lib = self._load()
        self.lib.cudaGetErrorString.restype = ctypes.c_char_p

    @staticmethod
    def _load() -> ctypes.CDLL:
        names = [ctypes.util.find_library("cudart")] + [f"libcudart.so.{v}" for v in ("13", "12", "11.0")]
        names += ["libcudart.so"]
        for base in sys.path:  # the nvidia-cuda-runtime wheel that tensorrt pulls in
            names += sorted(glob.glob(os.path.join(base, "nvidia", "cuda_runtime", "lib", "libcudart.so*")))
        for name in filter(None, names):
            try:
                return ctypes.CDLL(name)
            except OSError:
                continue
        raise DeviceError("the CUDA runtime library (libcudart) was not found; install the CUDA runtime that "
                          "matches your TensorRT (JetPack ships it) and check `socketedge doctor`")

    def check(self, status: int, what: str) -> None:
        if status != 0:
            msg = self.lib.cudaGetErrorString(status).decode()
            raise DeviceError(f"CUDA {what} failed: {msg} (error {status})")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self.check(self.lib.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(max(nbytes, 1))), "cudaMalloc")
        return int(ptr.value)

    def free(self, ptr: int) -> None:
        self.lib.cudaFree(ctypes.c_void_p(ptr))

    def stream(self) -> int:
        s = ctypes.c_void_p()
        self.check(self.lib.cudaStreamCreate(ctypes.byref(s)), "cudaStreamCreate")
        return int(s.value or 0)

    def destroy_stream(self, s: int) -> None:
        self.lib.cudaStreamDestroy(ctypes.c_void_p(s))

    def copy(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        self.check(self.lib.cudaMemcpyAsync(ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes),
                                            ctypes.c_int(kind), ctypes.c_void_p(stream)), "cudaMemcpyAsync")

    def sync(self, stream: int) -> None:
        self.check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")


def numpy_dtype(trt, dtype) -> np.dtype:
    table = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
             "BOOL": np.bool_, "UINT8": np.uint8}
    for key, np_type in table.items():
        if hasattr(trt.DataType, key) and dtype == getattr(trt.DataType, key):
            return np.dtype(np_type)
    raise ModelError(f"engine tensor type {dtype} has no numpy equivalent socketedge can feed or read")


@register_backend("tensorrt")
class TensorRTBackend(Backend):
    suffixes = (".engine", ".plan", ".trt")

    @classmethod
    def open(cls, model: Path, provider: str = "auto", threads: int | None = None, require_gpu: bool = False,
             iobinding: bool | None = None) -> "TensorRTBackend":
        if provider not in ("auto", "tensorrt", "cuda"):
            raise DeviceError(f"a TensorRT engine runs on the GPU only; --provider {provider} cannot run {model}")
        card = read_sidecar(model)
        trt = lazy_import("tensorrt", "tensorrt", "needed to run .engine files")
        return cls(model, card, trt)

    def __init__(self, model: Path, card: ModelCard, trt):
        super().__init__(model, card)
        self.trt = trt
        self.cuda = CudaRuntime()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(model).read_bytes())
        if self.engine is None:
            raise ModelError(f"TensorRT {trt.__version__} cannot deserialize {model}: engines only run with the "
                             "TensorRT version and GPU they were built on; rebuild it on this device")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        if self.inputs != [INPUT_NAME] or OUTPUT_PROBS not in self.outputs:
            raise ModelError(f"{model} has inputs {self.inputs} and outputs {self.outputs}; expected input "
                             f"{INPUT_NAME!r} and output {OUTPUT_PROBS!r}")
        self.dtypes = {n: numpy_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        self.stream = self.cuda.stream()
        self.buffers: dict[str, tuple[int, int]] = {}  # name → (device pointer, capacity in bytes)
        self._version = trt.__version__

    @property
    def providers(self) -> list[str]:
        return [f"TensorRT {self._version}"]

    @property
    def on_gpu(self) -> bool:
        return True

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, cap = self.buffers.get(name, (0, 0))
        if nbytes > cap:
            if ptr:
                self.cuda.free(ptr)
            ptr, cap = self.cuda.malloc(nbytes), nbytes
            self.buffers[name] = (ptr, cap)
            self.context.set_tensor_address(name, ptr)
        return ptr

    def infer(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(frames.astype(self.dtypes[INPUT_NAME], copy=False))
        if not self.context.set_input_shape(INPUT_NAME, tuple(x.shape)):
            raise ModelError(f"{self.model} cannot take frames of shape {tuple(x.shape)}: outside the engine's "
                             "optimisation profile; rebuild the engine with this batch/resolution range")
        d_in = self._buffer(INPUT_NAME, x.nbytes)
        self.cuda.copy(d_in, x.ctypes.data, x.nbytes, H2D, self.stream)
        host = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            host[name] = np.empty(shape, self.dtypes[name])
            self._buffer(name, host[name].nbytes)
        if not self.context.execute_async_v3(self.stream):
            raise DeviceError(f"TensorRT failed to execute {self.model}")
        for name, arr in host.items():
            self.cuda.copy(arr.ctypes.data, self.buffers[name][0], arr.nbytes, D2H, self.stream)
        self.cuda.sync(self.stream)
        probs = host[OUTPUT_PROBS].astype(np.float32, copy=False)
        check_probs(probs, self.card, str(self.model))
        label = host.get(OUTPUT_LABEL)
        label = probs.argmax(1).astype(np.int64) if label is None else label.astype(np.int64)
        return probs, label

    def close(self) -> None:
        for ptr, _ in self.buffers.values():
            self.cuda.free(ptr)
        self.buffers.clear()
        if self.stream:
            self.cuda.destroy_stream(self.stream)
            self.stream = 0
        self.context = self.engine = self.runtime = None
