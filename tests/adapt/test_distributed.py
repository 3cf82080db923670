"""Data-parallel adaptation: 2 gloo processes on CPU against 1 process with the same global batch and seed.

The 2-process runs are real: each rank is a spawned interpreter that joins a gloo process group through the
torchrun environment variables, exactly as under `torchrun --nproc_per_node 2 -m socketedge adapt …`.

Tolerances: every loss term of every step within a relative 1e-5, and every adapted weight, running statistic
and ζ within 1e-5 (absolute) of the 1-process run. They hold with a wide margin (measured: 2.4e-7 relative for
the terms, 6.3e-7 for the weights after 6 steps) — the only differences are float summation orders (per-rank
partial sums, the two-round moment combination of the global-batch BatchNorm). The comparison does catch a
real difference: with per-rank BatchNorm statistics instead (plain BatchNorm under DDP), the second epoch's
pseudo-labels already differ from the 1-process ones.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from socketedge.adapt import distributed
from socketedge.adapt.config import AdaptConfig
from socketedge.adapt.distributed import DistContext, DistributedError
from socketedge.adapt.run import AdaptInterrupted, Adapter
from socketedge.errors import ConfigError
from socketedge.models.source_model import new_source_model

TOL = 1e-5  # relative for loss terms (float32 sums of values up to ~1e2), absolute for weights


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOL, abs_tol=1e-6)
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


# ---------------------------------------------------------------------- helpers run inside the spawned ranks


class _Recording(Adapter):
    """An Adapter that also keeps the pseudo-labels of every epoch and the terms of every step."""

    def __init__(self, cfg, on_step=None):
        self.pl_history: list[torch.Tensor] = []
        self.step_terms: list[dict] = []
        super().__init__(cfg, on_step)

    def compute_pseudo_labels(self):
        labels, acc = super().compute_pseudo_labels()
        self.pl_history.append(labels.clone())
        return labels, acc


def _run_phase(cfg: AdaptConfig, out_file: Path, stop_at: int | None = None, die_at: int | None = None,
               rank: int = 0) -> None:
    record: dict = {}
    adapter = None

    def on_step(step: int) -> None:
        adapter.step_terms.append(dict(adapter.last_terms))
        if die_at is not None and step == die_at and rank == 1:
            os._exit(3)  # a rank that dies mid-run, without any goodbye
        if stop_at is not None and step == stop_at and rank == 0:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C seen by one rank only: all must stop at the same step

    started = time.perf_counter()
    try:
        adapter = _Recording(cfg, on_step)
        result = adapter.run()
        record["weights"] = {f"{k}.{n}": t.detach().cpu().clone() for k, m in enumerate(result.ensemble.members)
                             for n, t in m.model.state_dict().items()}
        record["zeta"] = result.ensemble.zeta.clone()
        record["is_main"] = result.is_main
    except (AdaptInterrupted, DistributedError) as e:
        record["error"] = f"{type(e).__name__}: {e}"
    record["seconds"] = time.perf_counter() - started
    if adapter is not None:
        record["pseudo"] = adapter.pl_history
        record["steps"] = adapter.step_terms
    torch.save(record, out_file)


def _rank_main(rank: int, world: int, ports: list[int], phases: list[dict], results: str) -> None:
    torch.set_num_threads(1)
    for i, phase in enumerate(phases):
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(ports[i]), RANK=str(rank),
                          WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
        _run_phase(phase["cfg"], Path(results) / f"{i}_{rank}.pt", phase.get("stop_at"), phase.get("die_at"), rank)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _spawn(world: int, phases: list[dict], results: Path, timeout: float = 240) -> list[int | None]:
    """Run the phases in ``world`` fresh interpreters (one per rank); returns their exit codes."""
    ctx = mp.get_context("spawn")
    ports = _free_ports(len(phases))
    procs = [ctx.Process(target=_rank_main, args=(r, world, ports, phases, str(results))) for r in range(world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(1.0, deadline - time.monotonic()))
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    return codes


def _load(results: Path, phase: int, rank: int) -> dict:
    return torch.load(results / f"{phase}_{rank}.pt", weights_only=False)


# ---------------------------------------------------------------------- fixtures


@pytest.fixture
def setup(adapt_data, monkeypatch):
    for var in TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)
    return adapt_data


def _cfg(setup, out: Path, **kw) -> AdaptConfig:
    sources, target, ti = setup
    base = dict(sources=sources, target=target / "depth", ti=ti, out=out, epochs=2, batch_size=8, device="cpu",
                show_progress=False)
    return AdaptConfig(**(base | kw))


def _assert_same_weights(a: dict, b: dict, tol: float = TOL) -> float:
    assert a.keys() == b.keys()
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
    assert worst <= tol, f"adapted weights differ by {worst:.3g} (tolerance {tol})"
    return worst


# ---------------------------------------------------------------------- the 2-process runs


def test_two_gloo_ranks_match_one_process(setup, tmp_path):
    """Same global batch (8) and seed: 1 process vs 2 ranks × 4 images. Also: --resume in a data-parallel run
    after a Ctrl-C seen by one rank, and a rank that dies mid-run stopping the other with a clear error."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each rank: the same kernels, and 3 busy processes on 2 cores at most
    results = tmp_path / "results"
    results.mkdir()
    # reference: one process, in this interpreter
    # shot: no TI term, so DDP reduces on the target backward; a global batch of 7 splits unevenly (4 + 3)
    shot = dict(sources=setup[0][:1], method="shot", batch_size=7, epochs=1)
    try:
        _run_phase(_cfg(setup, tmp_path / "one"), results / "ref.pt")
        _run_phase(_cfg(setup, tmp_path / "one_shot", **shot), results / "ref_shot.pt")
    finally:
        torch.set_num_threads(threads)
    one = torch.load(results / "ref.pt", weights_only=False)
    assert "error" not in one and len(one["steps"]) == 6  # 24 images / 8 × 2 epochs

    phases = [{"cfg": _cfg(setup, tmp_path / "two")},
              {"cfg": _cfg(setup, tmp_path / "resumed"), "stop_at": 4},
              {"cfg": _cfg(setup, tmp_path / "resumed", resume=True)},
              {"cfg": _cfg(setup, tmp_path / "two_shot", **shot)},
              {"cfg": _cfg(setup, tmp_path / "dead"), "die_at": 1}]
    codes = _spawn(2, phases, results)
    assert codes == [0, 3], f"rank exit codes {codes}"

    # 1) equivalence of the full run
    r0, r1 = _load(results, 0, 0), _load(results, 0, 1)
    for r in (r0, r1):
        assert "error" not in r, r.get("error")
        assert len(r["pseudo"]) == len(one["pseudo"]) == 2
        for mine, ref in zip(r["pseudo"], one["pseudo"]):
            assert torch.equal(mine, ref), "pseudo-labels differ from the 1-process run"
        assert len(r["steps"]) == len(one["steps"])
        for step, (mine, ref) in enumerate(zip(r["steps"], one["steps"])):
            assert mine.keys() == ref.keys() == {"loss", "ent", "div", "pl", "ti", "bn"}
            for term in ref:
                assert _close(mine[term], ref[term]), f"step {step + 1} {term}: {mine[term]} vs {ref[term]}"
        _assert_same_weights(r["weights"], one["weights"])
        assert torch.allclose(r["zeta"], one["zeta"], atol=TOL)
    for k in r0["weights"]:  # ranks hold the same model, bit for bit
        assert torch.equal(r0["weights"][k], r1["weights"][k]), k
    assert r0["is_main"] and not r1["is_main"]
    # only rank 0 wrote: one bundle with metrics and plots, and the history it holds is the 1-process one
    bundle = tmp_path / "two"
    for f in ("bundle.json", "weights.safetensors", "metrics.json", "metrics.png"):
        assert (bundle / f).stat().st_size > 0
    assert not (bundle / "resume.pt").exists()
    ref_hist = json.loads((tmp_path / "one" / "metrics.json").read_text())["history"]
    hist = json.loads((bundle / "metrics.json").read_text())["history"]
    for h, ref in zip(hist, ref_hist):
        for term in ("loss", "ent", "div", "pl", "ti", "bn"):
            assert _close(h[term], ref[term]), (term, h[term], ref[term])

    # 2) Ctrl-C on rank 0 at step 4: both ranks stop after step 4 and rank 0 writes one checkpoint;
    #    the resumed 2-rank run ends on the uninterrupted 1-process weights
    for rank in (0, 1):
        stopped = _load(results, 1, rank)
        assert stopped["error"].startswith("AdaptInterrupted") and len(stopped["steps"]) == 4
        resumed = _load(results, 2, rank)
        assert "error" not in resumed, resumed.get("error")
        assert len(resumed["steps"]) == 2  # epoch 2, steps 2–3 (its pseudo-labels came from the checkpoint)
        _assert_same_weights(resumed["weights"], one["weights"])

    # 3) shot with uneven shards
    one_shot = torch.load(results / "ref_shot.pt", weights_only=False)
    assert len(one_shot["steps"]) == 3 and set(one_shot["steps"][0]) == {"loss", "ent", "div", "pl"}
    for rank in (0, 1):
        r = _load(results, 3, rank)
        assert "error" not in r, r.get("error")
        assert torch.equal(r["pseudo"][0], one_shot["pseudo"][0])
        for mine, ref in zip(r["steps"], one_shot["steps"], strict=True):
            assert all(_close(mine[t], ref[t]) for t in ref), (mine, ref)
        _assert_same_weights(r["weights"], one_shot["weights"])

    # 4) rank 1 dies at step 1: rank 0 stops with a one-line DistributedError instead of hanging
    survivor = _load(results, 4, 0)
    assert survivor["error"].startswith("DistributedError") and "lost contact" in survivor["error"]
    assert "\n" not in survivor["error"]
    assert survivor["seconds"] < 120


# ---------------------------------------------------------------------- one-process pieces


def test_shards_reassemble_the_global_batch():
    idx = torch.randperm(29)
    for world in (1, 2, 3, 4):
        parts = [DistContext(rank=r, world=world).shard(idx) for r in range(world)]
        assert torch.equal(torch.cat(parts), idx)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        rows = [DistContext(rank=r, world=world).rows(29) for r in range(world)]
        assert [s.start for s in rows] == [0] + [s.stop for s in rows[:-1]] and rows[-1].stop == 29
        assert [s.stop - s.start for s in rows] == list(map(len, parts))


def test_one_process_helpers_are_the_identity():
    ctx = DistContext()
    x = torch.randn(5, 3, requires_grad=True)
    assert torch.equal(ctx.batch_mean(x), x.mean(0))
    m, v, c = torch.randn(4), torch.rand(4), torch.full((4,), 7.0)
    assert ctx.moments(m, v, c) == (m, v, c)
    assert ctx.any(True) and not ctx.any(False)
    assert ctx.broadcast_object({"a": 1}) == {"a": 1}


def test_no_torchrun_means_no_process_group(monkeypatch):
    for var in TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)
    ctx, device = distributed.setup(torch.device("cpu"))
    assert not ctx.active and ctx.is_main and device == torch.device("cpu")
    assert not torch.distributed.is_initialized()


def test_bad_torchrun_environment_is_one_line(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for var in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DistributedError, match="start the job with torchrun"):
        distributed.setup(torch.device("cpu"))
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigError, match="positive number of seconds"):
        distributed.timeout_s()


def test_global_batch_smaller_than_the_world_is_a_config_error(setup, tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "setup", lambda device: (DistContext(rank=0, world=16), device))
    with pytest.raises(ConfigError, match="cannot be split over 16 processes"):
        Adapter(_cfg(setup, tmp_path / "b", method="decision", ti=None))


def test_global_batchnorm_is_batchnorm_with_one_process():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(3)
    glob = distributed.GlobalBatchNorm(3)
    glob.load_state_dict(bn.state_dict())
    x = torch.randn(6, 3, 5, 5)
    assert torch.equal(bn(x), glob(x))
    assert torch.equal(bn.running_var, glob.running_var)
    assert set(glob.state_dict()) == set(bn.state_dict())


def test_sync_batchnorm_swap_shares_tensors_and_restores(monkeypatch):
    model = new_source_model("tiny_cnn", ["a", "b"])
    before = [id(p) for p in model.encoder.parameters()]
    restore = distributed.sync_batchnorm(model.encoder, DistContext(rank=0, world=2), torch.device("cpu"))
    kinds = {type(m).__name__ for m in model.encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    assert kinds == {"GlobalBatchNorm"}
    assert [id(p) for p in model.encoder.parameters()] == before  # the optimiser keeps training the same tensors
    restore()
    kinds = {type(m).__name__ for m in model.encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    assert kinds == {"BatchNorm1d", "BatchNorm2d"}


# ---------------------------------------------------------------------- the --distributed launcher


def test_cli_distributed_launches_torchrun_with_the_same_arguments(setup, tmp_path, cli, monkeypatch):
    import subprocess

    calls = []

    class FakePopen:
        def __init__(self, cmd, env=None, **kw):
            calls.append((cmd, env))

        def wait(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    sources, target, ti = setup
    res = cli("adapt", "--source", sources[0], "--source", sources[1], "--target", target / "depth", "--ti", ti,
              "--out", tmp_path / "b", "--epochs", 3, "--batch-size", 16, "--no-amp", "--distributed", 2)
    assert res.exit_code == 0, res.stdout + res.stderr
    (cmd, env), = calls
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--standalone" in cmd and cmd[cmd.index("--nproc_per_node") + 1] == "2"
    rest = cmd[cmd.index("-m", 3):]
    assert rest[:3] == ["-m", "socketedge", "adapt"]
    assert rest.count("--source") == 2 and str(sources[1]) in rest
    assert rest[rest.index("--epochs") + 1] == "3" and rest[rest.index("--batch-size") + 1] == "16"
    assert "--no-amp" in rest and "--distributed" not in rest
    assert env["OMP_NUM_THREADS"]


def test_cli_distributed_rejects_bad_counts(setup, tmp_path, cli):
    sources, target, ti = setup
    res = cli("adapt", "--source", sources[0], "--target", target / "depth", "--out", tmp_path / "b",
              "--distributed", 0)
    assert res.exit_code != 0


@pytest.mark.slow
def test_cli_distributed_end_to_end(setup, tmp_path, cli):
    """The real launcher: torchrun (torch.distributed.run) starts 2 CPU ranks of `socketedge adapt`."""
    sources, target, ti = setup
    res = cli("adapt", "--source", sources[0], "--source", sources[1], "--target", target / "depth", "--ti", ti,
              "--out", tmp_path / "b", "--epochs", 1, "--batch-size", 8, "--device", "cpu", "--distributed", 2)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert (tmp_path / "b" / "bundle.json").exists() and (tmp_path / "b" / "metrics.json").exists()
