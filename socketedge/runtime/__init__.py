"""On-device inference: backends (onnxruntime, TensorRT, torch) behind a registry, the live loop (capture
thread, smoothing, sinks), latency meters and benchmarks. Imports without torch; heavy libraries load lazily."""

from socketedge.runtime.backends import BACKENDS, Backend, backend_names, open_backend
from socketedge.runtime.loop import RunConfig, RunSummary, run, run_live

__all__ = ["BACKENDS", "Backend", "RunConfig", "RunSummary", "backend_names", "open_backend", "run", "run_live"]
