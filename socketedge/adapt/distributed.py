"""Data-parallel adaptation under torchrun: process group, sharding and the collectives of the method state.

`torchrun --nproc_per_node N -m socketedge adapt …` starts N copies of the ordinary command; `Adapter` notices
the torchrun environment (WORLD_SIZE > 1) and calls `setup`. Every rank then holds the full in-memory data and
takes its contiguous slice of every global batch (`DistContext.shard`), so the union of the rank batches is the
batch one process would draw with the same seed and global batch size — the deterministic equivalent of a
DistributedSampler, which keeps the per-step seeded augmentation identical too.

Every loss term is computed as the value of the GLOBAL batch on every rank: batch means, the batch-mean
prediction and the BN-input moments are summed over ranks with the autograd-aware all-reduce of
torch.distributed.nn. Its backward sums the (identical) upstream gradients of the W ranks, so each rank's local
gradient is W × its share of the true gradient and DDP's averaging over W ranks yields exactly the one-process
gradient, with no loss rescaling anywhere.

BatchNorm layers normalise with global batch statistics as well, so 2 ranks × 16 images equal 1 × 32: CUDA
uses torch's SyncBatchNorm; on CPU (which SyncBatchNorm refuses: "expected input tensor to be on GPU") the
layers are swapped for `GlobalBatchNorm` below, built on the same moment combination as the BN term.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from socketedge.errors import ConfigError, SocketEdgeError, short

TIMEOUT_ENV = "SOCKETEDGE_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 900.0  # longer than any single step or per-epoch pass we expect; a dead peer is seen at once
_PEER_FAILURE_HINTS = ("gloo", "nccl", "connection closed", "connection reset", "timed out", "broken pipe",
                       "socket", "peer")


class DistributedError(SocketEdgeError):
    """A rank died or stalled, or the torchrun environment is inconsistent."""


def _sum(x: torch.Tensor) -> torch.Tensor:
    """Differentiable all-reduce (sum) over the default group: its backward all-reduces the incoming gradients.
    torch's functional collectives (what torch.distributed.nn.functional, now deprecated, points to)."""
    from torch.distributed import _functional_collectives as fc

    return fc.wait_tensor(fc.all_reduce(x.contiguous(), "sum", dist.group.WORLD))


@dataclass
class DistContext:
    """Where this process stands in the job. The default is the one-process case, where every helper is the
    identity, so the single-process code path is unchanged bit for bit."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ sharding
    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global index batch (ranks in order reassemble it)."""
        return idx.tensor_split(self.world)[self.rank] if self.active else idx

    def rows(self, n: int) -> slice:
        """This rank's contiguous slice of n rows (for the per-epoch / one-off feature passes)."""
        if not self.active:
            return slice(0, n)
        bounds = torch.arange(n).tensor_split(self.world)
        mine = bounds[self.rank]
        start = int(mine[0]) if len(mine) else sum(len(b) for b in bounds[:self.rank])
        return slice(start, start + len(mine))

    def gather_rows(self, local: torch.Tensor, n: int, dim: int = 0, device: torch.device | None = None,
                    ) -> torch.Tensor:
        """All-gather the per-rank slices (see `rows`) of an n-row tensor into the whole tensor, in global order.
        Shards may differ in size by one: each is padded to the largest before the collective."""
        if not self.active:
            return local
        sizes = [len(b) for b in torch.arange(n).tensor_split(self.world)]
        x = local.movedim(dim, 0).contiguous()
        home = x.device
        if device is not None:
            x = x.to(device)
        padded = x.new_zeros((max(sizes), *x.shape[1:]))
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        whole = torch.cat([p[:s] for p, s in zip(parts, sizes)])
        return whole.to(home).movedim(0, dim)

    # ------------------------------------------------------------------ global statistics (autograd-aware)
    def batch_mean(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over dim 0 of the global batch (all ranks' rows), differentiable."""
        if not self.active:
            return x.mean(dim=0)
        total = x.sum(dim=0)
        count = x.new_full((1,), float(x.shape[0]))
        packed = _sum(torch.cat([total.reshape(-1), count]))
        return (packed[:-1] / packed[-1]).reshape(total.shape)

    def moments(self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Global mean, (population) variance and sample count from each rank's per-channel mean, variance and
        count.

        Exact two-round combination (Chan et al.): the global mean first, then Σ_r n_r (σ²_r + (μ_r − μ)²),
        which never subtracts two large numbers. Elementwise, so many layers can be combined in one call."""
        if not self.active:
            return mean, var, count
        first = _sum(torch.cat([mean * count, count]))
        k = mean.numel()
        total = first[k:].detach()
        gmean = first[:k] / total
        gvar = _sum(count * (var + (mean - gmean) ** 2)) / total
        return gmean, gvar, total

    # ------------------------------------------------------------------ plain collectives
    def average_grad_(self, params: list[torch.Tensor]) -> None:
        """Average the gradients of parameters DDP does not manage (ζ) over ranks, in place."""
        if not self.active:
            return
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad.div_(self.world)

    def any(self, flag: bool, device: torch.device | None = None) -> bool:
        """True on every rank when it is true on one (a stop request must stop every rank at the same step)."""
        if not self.active:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def broadcast_object(self, obj):
        """Rank 0's object on every rank (rank 0 reads the checkpoint; no shared filesystem needed)."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False

    @contextmanager
    def guard(self):
        """Turn a collective that failed because a peer died or stalled into a one-line DistributedError."""
        try:
            yield
        except DistributedError:
            raise
        except RuntimeError as e:
            text = str(e)
            if not self.active or not (isinstance(e, dist.DistError)
                                       or any(h in text.lower() for h in _PEER_FAILURE_HINTS)):
                raise
            first = next((line.strip() for line in text.splitlines() if line.strip()), type(e).__name__)
            raise DistributedError(
                f"rank {self.rank}/{self.world}: lost contact with another rank ({short(first)}); the job stops — "
                f"the first failing rank's own error is above; rerun (add --resume to continue from the last "
                f"checkpoint)") from None


def torchrun_env() -> bool:
    """True when this process was started by torchrun (torch.distributed.run) with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def timeout_s() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r} is not a positive number of seconds; unset it or set e.g. 600")
    return value


def setup(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the torchrun job (NCCL on CUDA, gloo on CPU) and return this rank's context and device.

    Outside torchrun (or with one rank) nothing is initialised. An already initialised default group (a caller
    that set one up itself) is used as is and left open."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        return DistContext(rank, world, local, dist.get_backend(), owns_group=False), _rank_device(device, local)
    if not torchrun_env():
        return DistContext(), device
    if not dist.is_available():
        raise DistributedError("this torch build has no torch.distributed; run on one process (no torchrun)")
    missing = [v for v in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise DistributedError(f"WORLD_SIZE is set but {', '.join(missing)} is not: start the job with torchrun "
                               "(python -m torch.distributed.run) or `socketedge adapt --distributed N`")
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    device = _rank_device(device, local)
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {"device_id": device} if backend == "nccl" else {}
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s()), **kwargs)
    return DistContext(rank, world, local, backend, owns_group=True), device


def _rank_device(device: torch.device, local_rank: int) -> torch.device:
    if device.type != "cuda":
        return device
    if local_rank >= torch.cuda.device_count():
        raise DistributedError(f"local rank {local_rank} has no GPU (torch sees {torch.cuda.device_count()}); "
                               "start at most one process per GPU per node (--nproc_per_node)")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


# ---------------------------------------------------------------------- BatchNorm over the global batch


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training-mode statistics are those of the global batch of all ranks (CPU / gloo).

    Same parameters, buffers and state_dict keys as BatchNorm1d/2d/3d; in eval mode, or with one rank, it is
    plain BatchNorm. Running statistics are updated with the global mean and the unbiased global variance, as
    torch's SyncBatchNorm does, so every rank keeps identical buffers."""

    def __init__(self, *args, context: DistContext | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.context = context or DistContext()

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {input.dim()}-D)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.context.active):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        var, mean = torch.var_mean(xf, dim=dims, unbiased=False)
        count = mean.new_full(mean.shape, float(xf.numel() // xf.shape[1]))
        gmean, gvar, total = self.context.moments(mean, var, count)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum)
                n = float(total[0])
                unbiased = gvar.detach() * (n / max(n - 1, 1))
                self.running_mean.mul_(1 - factor).add_(gmean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        scale = torch.rsqrt(gvar + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        shift = -gmean * scale
        if self.bias is not None:
            shift = shift + self.bias
        shape = [1, -1] + [1] * (x.dim() - 2)
        return (xf * scale.view(shape) + shift.view(shape)).to(x.dtype)


def sync_batchnorm(module: nn.Module, context: DistContext, device: torch.device):
    """Swap every BatchNorm of ``module`` for one that normalises with global batch statistics, sharing the
    original parameters and buffers (so optimiser, hooks-to-be and checkpoints see the same tensors). Returns
    a function that puts the original layers back (the bundle holds plain BatchNorm)."""
    if not context.active:
        return lambda: None
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, nn.modules.batchnorm._BatchNorm) or isinstance(child, (nn.SyncBatchNorm,
                                                                                             GlobalBatchNorm)):
                continue
            args = (child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            new = nn.SyncBatchNorm(*args) if device.type == "cuda" else GlobalBatchNorm(*args, context=context)
            if child.affine:
                new.weight, new.bias = child.weight, child.bias
            new.running_mean, new.running_var = child.running_mean, child.running_var
            new.num_batches_tracked = child.num_batches_tracked
            new.train(child.training)
            setattr(parent, name, new)
            swapped.append((parent, name, child))

    def restore() -> None:
        for parent, name, original in swapped:
            current = getattr(parent, name)
            original.train(current.training)
            setattr(parent, name, original)

    return restore


# ---------------------------------------------------------------------- local launcher (`adapt --distributed N`)


def torchrun_command(nproc: int, module_args: list[str]) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node N -m socketedge <args>`` (one node)."""
    import sys

    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "socketedge", *module_args]


def launch_local(nproc: int, module_args: list[str]) -> int:
    """Run ``socketedge <module_args>`` as an nproc-rank job on this machine through torchrun; its exit code.

    CPU ranks share the cores (OMP_NUM_THREADS = cores / N unless set). Ctrl-C reaches torchrun and the ranks
    as well: they stop after the current step and rank 0 writes a checkpoint, so this process only waits."""
    import subprocess

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    proc = subprocess.Popen(torchrun_command(nproc, module_args), env=env)
    interrupted = False
    while True:
        try:
            code = proc.wait()
            return 130 if interrupted and code else code  # 130 like an interrupted one-process run
        except KeyboardInterrupt:
            interrupted = True
