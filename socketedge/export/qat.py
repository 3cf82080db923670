"""Quantization-aware fine-tuning before int8 export: the fused fp32 model taught to survive onnxruntime's int8.

Post-training quantization rounds every weight and activation of a network once and hopes the errors cancel;
on the depth classifiers socketedge makes they do not (README, "Precision on CPUs": resnet18 95 %, EfficientNet-
Lite0 35 % top-1 agreement with fp32 on held-out NTU depth, the error spread over every layer rather than in a
few). ``finetune`` fixes the weights instead of the graph: a copy of the fused model runs with the same rounding
the exported graph will apply — per-output-channel symmetric weights (7- or 8-bit), per-tensor activations with
MinMax ranges on the calibration frames at the tensors onnxruntime's quantizer puts Q/DQ pairs on — and is trained
(straight-through rounding, SGD) to reproduce the probabilities of the untouched fp32 model (the teacher) on the
calibration frames, augmented. No label is used: the target is fp32 itself, which is exactly what the parity check
and ``--precision auto`` measure against. Only the float weights change; ``precision.Int8Builder`` then calibrates
and quantizes the fine-tuned graph as usual, its rounding the one trained with (same formulas:
``onnxruntime.quantization.quant_utils``), so the int8 graph stays a plain Q/DQ graph for onnxruntime and TensorRT
alike.

What is simulated, per form (export/precision.py builds the real graphs; ``instrument`` has the rules):

- ``uint8``: activations asymmetric uint8 [0, 255] (range widened to hold 0) at the inputs and outputs of every
  quantized convolution, linear layer and residual add / product (an output after the ReLU that follows it, which
  onnxruntime removes), and into pooling on the way to a quantized layer; weights per channel in [-64, 64]
  (``reduce_range``) or [-127, 127].
- ``int8``: activations symmetric int8 [-127, 127] at the inputs of convolutions and linear layers only; weights
  per channel in [-127, 127].

Layers the export keeps float32 (``float_head``, the default, and ``float_stem``: ``precision.Int8Builder``) are
float in the simulation too. On the NTU benchmark's classifiers the simulated and the real int8 graph's top-1
agreement with fp32 differ by at most 1 of 300 frames for resnet18 and 2–8 for EfficientNet-Lite0, whose fp32 is
itself unstable under sensor noise (tests/export/test_qat.py checks the match on a resnet18).

The BatchNorms are already folded into the convolutions (fuse.py), and per-channel symmetric rounding commutes
with the per-channel scale folding applies, so the rounding trained with is the exported graph's.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from socketedge.export.frames import as_batch
from socketedge.export.precision import prob_errors
from socketedge.fuse import FusedModel

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
_ARITH = {operator.add, operator.iadd, torch.add, operator.mul, operator.imul, torch.mul}
_POOL_FUNCS = {F.adaptive_avg_pool2d, F.avg_pool2d, F.max_pool2d, torch.flatten}
_RELU_FUNCS = {F.relu, torch.relu, F.relu6, torch.relu_}


@dataclass(frozen=True)
class QuantForm:
    """The integer ranges of one int8 form (the values onnxruntime's quantizer uses for it)."""

    name: str
    act_min: int
    act_max: int
    act_symmetric: bool
    weight_max: int  # weights symmetric in [-weight_max, weight_max]
    whole_body: bool  # quantize adds / pools / logits too (uint8), or only conv / linear inputs (int8)


FORMS = {
    "uint8": QuantForm("uint8", 0, 255, False, 64, True),
    "int8": QuantForm("int8", -127, 127, True, 127, False),
}


class WeightFakeQuant(nn.Module):
    """Parametrization: the weight rounded per output channel, symmetric, straight-through gradient."""

    def __init__(self, qmax: int):
        super().__init__()
        self.qmax = qmax
        self.enabled = True

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return w
        absmax = w.detach().abs().flatten(1).amax(1)
        scale = torch.where(absmax > 0, absmax / self.qmax, torch.ones_like(absmax)).float()
        zero = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
        return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -self.qmax, self.qmax)


class ActFakeQuant(nn.Module):
    """One activation tensor's Q/DQ: ``observing`` collects its MinMax range over calibration passes; otherwise it
    rounds to the form's per-tensor grid (straight-through inside the range, as quantization clips outside)."""

    def __init__(self, form: QuantForm):
        super().__init__()
        self.form = form
        self.observing = False
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(0.0))
        self.seen = False

    def reset(self) -> None:
        self.lo.zero_()
        self.hi.zero_()
        self.seen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            with torch.no_grad():
                self.lo.copy_(torch.minimum(self.lo, x.min().float()))
                self.hi.copy_(torch.maximum(self.hi, x.max().float()))
                self.seen = True
            return x
        if not self.seen:
            return x
        f = self.form
        lo, hi = float(self.lo), float(self.hi)  # the range holds 0 (initialised at 0), as onnxruntime's does
        if f.act_symmetric:
            m = max(-lo, hi)
            scale, zero = (m / f.act_max if m > 0 else 1.0), 0
        else:
            scale = (hi - lo) / (f.act_max - f.act_min) if hi > lo else 1.0
            zero = int(round(f.act_min - lo / scale))
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, f.act_min, f.act_max)


def _removable_activation(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    """A ReLU / ReLU6: onnxruntime's uint8 quantizer removes it and quantizes its input's producer with its output's
    range (the Q after it then clips, since the zero point is 0 or the range ends at 6)."""
    if node.op == "call_module":
        return isinstance(modules.get(node.target), (nn.ReLU, nn.ReLU6))
    return node.op == "call_function" and node.target in _RELU_FUNCS


def float_modules(branch: torch.fx.GraphModule, stem: bool = False, head: bool = False) -> set[str]:
    """Names of the branch's weighted modules kept float32 in the exported graph: its stem (the layers reading the
    preprocessed frame, ``precision.stem_nodes`` in the ONNX graph) and its head (every linear layer:
    ``precision.Int8Builder.head_nodes``)."""
    modules = dict(branch.named_modules())
    out = set()
    for node in branch.graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], _WEIGHTED):
            continue
        if head and isinstance(modules[node.target], nn.Linear):
            out.add(node.target)
        if stem and any(a.op == "placeholder" for a in node.all_input_nodes):
            out.add(node.target)
    return out


def instrument(branch: torch.fx.GraphModule, form: QuantForm, keep_float: set[str] = frozenset()) \
        -> tuple[torch.fx.GraphModule, list[ActFakeQuant], list[WeightFakeQuant]]:
    """A copy of a fused branch with fake quantization where the exported int8 graph quantizes, the weighted
    modules named in ``keep_float`` (``float_modules``) left float as ``Int8Builder.build(keep_float=...)`` leaves
    them. Mirrors onnxruntime's QDQ quantizer:

    - every quantized convolution / linear layer has its inputs quantized and, in the uint8 form, its output — after
      the ReLU / ReLU6 that follows it, which the quantizer removes (a ReLU's own range, not the convolution's);
    - uint8 form: residual adds / products have inputs and output quantized (again after a following ReLU, as in
      resnet's add → relu); pooling and flattening carry quantized values only on the way into a quantized layer
      (onnxruntime pools the float tensor before a float head)."""
    gm = copy.deepcopy(branch)
    modules = dict(gm.named_modules())
    graph = gm.graph
    acts: list[ActFakeQuant] = []
    quant_of: dict[torch.fx.Node, torch.fx.Node] = {}

    def quantized(value: torch.fx.Node) -> torch.fx.Node:
        if value not in quant_of:
            q = ActFakeQuant(form)
            name = f"_qat_act_{len(acts)}"
            gm.add_module(name, q)
            acts.append(q)
            with graph.inserting_after(value):
                quant_of[value] = graph.call_module(name, (value,))
        return quant_of[value]

    def weighted(n: torch.fx.Node) -> bool:
        return n.op == "call_module" and isinstance(modules[n.target], _WEIGHTED) and n.target not in keep_float

    def arith(n: torch.fx.Node) -> bool:
        return form.whole_body and n.op == "call_function" and n.target in _ARITH

    def pooling(n: torch.fx.Node) -> bool:
        return form.whole_body and ((n.op == "call_module" and isinstance(modules[n.target], _POOLS))
                                    or (n.op == "call_function" and n.target in _POOL_FUNCS))

    def feeds_quantized(n: torch.fx.Node) -> bool:  # n's output reaches a quantized layer through pooling only
        return any(weighted(u) or arith(u) or (pooling(u) and feeds_quantized(u)) for u in n.users)

    def reroute(value: torch.fx.Node) -> None:
        """Quantize ``value`` for all of its users (an output Q/DQ pair)."""
        users = [u for u in value.users if u is not quant_of.get(value)]
        q = quantized(value)
        for u in users:
            u.replace_input_with(value, q)

    nodes = list(graph.nodes)
    for node in nodes:
        if weighted(node) or arith(node) or (pooling(node) and feeds_quantized(node)):
            for arg in list(node.all_input_nodes):
                if arg.op in ("call_module", "call_function", "call_method", "placeholder"):
                    node.replace_input_with(arg, quantized(arg))
    if form.whole_body:  # outputs: QLinearConv / QGemm / QLinearAdd / QLinearMul write uint8
        for n in nodes:
            if not (weighted(n) or arith(n)):
                continue
            users = [u for u in n.users if u is not quant_of.get(n)]
            if len(users) == 1 and _removable_activation(users[0], modules):
                n = users[0]
            reroute(n)
    weights = []
    for name, m in list(gm.named_modules()):
        if isinstance(m, _WEIGHTED) and name not in keep_float:
            w = WeightFakeQuant(form.weight_max)
            parametrize.register_parametrization(m, "weight", w, unsafe=True)
            weights.append(w)
    graph.lint()
    gm.recompile()
    return gm, acts, weights


def strip(student: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The fine-tuned branch as a plain float network: fake-quant nodes removed, latent float weights kept."""
    gm = copy.deepcopy(student)
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and isinstance(gm.get_submodule(node.target), ActFakeQuant):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
    for m in gm.modules():
        if parametrize.is_parametrized(m):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    for p in gm.parameters():
        p.requires_grad_(False)
    return gm.eval()


@dataclass
class QATResult:
    model: FusedModel  # the fine-tuned fused model (float weights; export it, then quantize it)
    record: dict = field(default_factory=dict)


def _inputs(fused: FusedModel, frames: list[np.ndarray]) -> list[torch.Tensor]:
    """Each preprocessing's model inputs for the frames, (N, 3, S, S), computed once."""
    out = []
    with torch.no_grad():
        for pre in fused.preprocess:
            out.append(torch.cat([pre(torch.from_numpy(as_batch([f]))) for f in frames]))
    return out


def _augment(xs: list[torch.Tensor], rng: np.random.Generator, mix: float) -> list[torch.Tensor]:
    """Flips, shifts of up to 1/8 of the side and, for a share ``mix`` of the batch, a blend of two frames: inputs
    near and between the calibration frames, where the teacher's decisions must be kept. ``xs``: one batch of the
    same frames per preprocessing, all transformed alike (every branch of the ensemble sees the same frame, as in
    deployment)."""
    n, _, h0, w0 = xs[0].shape
    flip = rng.random(n) < 0.5
    # pixels of the first input, scaled to each input's size: the preprocessings may differ in size
    shift = rng.integers(-(min(h0, w0) // 8), min(h0, w0) // 8 + 1, (n, 2)) / np.array([h0, w0])
    k = int(round(mix * n))
    lam = torch.from_numpy(rng.beta(0.4, 0.4, k).astype(np.float32)).view(k, 1, 1, 1)
    other = torch.from_numpy(rng.permutation(n)[:k])
    out = []
    for x in xs:
        h, w = x.shape[2:]
        y = torch.stack([torch.roll(x[i].flip(2) if flip[i] else x[i],
                                    shifts=(round(shift[i, 0] * h), round(shift[i, 1] * w)), dims=(1, 2))
                         for i in range(n)])
        if k:
            y[:k] = lam * y[:k] + (1 - lam) * y[other]
        out.append(y)
    return out


def _observe(students, acts, inputs, branch_preprocess, batch: int) -> None:
    """MinMax ranges of every simulated activation on ``inputs``, measured as onnxruntime calibrates: through the
    float network (weights unrounded, no activation rounding)."""
    rounding = [m for s in students for m in s.modules() if isinstance(m, WeightFakeQuant)]
    enabled = [w.enabled for w in rounding]
    for w in rounding:
        w.enabled = False
    for q in acts:
        q.reset()
        q.observing = True
    try:
        with torch.no_grad():
            for s, i in zip(students, branch_preprocess):
                s.eval()
                for j in range(0, len(inputs[i]), batch):
                    s(inputs[i][j:j + batch])
    finally:
        for q in acts:
            q.observing = False
        for w, e in zip(rounding, enabled):
            w.enabled = e


def _mixed_log_probs(outs: list[torch.Tensor], zeta: list[float]) -> torch.Tensor:
    if len(outs) == 1:
        return outs[0].log_softmax(1)
    return torch.logsumexp(torch.stack([o.log_softmax(1) + float(np.log(z)) for o, z in zip(outs, zeta)]), 0)


def _kl(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(fp32 ‖ simulated int8) per frame, from log-probabilities."""
    return (target.exp() * (target - pred)).sum(1)


def finetune(fused: FusedModel, frames: list[np.ndarray], activations: str = "uint8", steps: int = 200,
             lr: float = 1e-4, batch: int = 16, mix: float = 0.5, check_every: int = 20, holdout: float = 0.25,
             reduce_range: bool | None = None, float_stem: bool = False, float_head: bool = True, seed: int = 0,
             progress=None) -> QATResult:
    """Quantization-aware fine-tuning of ``fused`` (not modified) on ``frames`` (raw calibration frames) for the
    int8 form ``activations`` (``reduce_range``: its weight range as given to ``precision.Int8Builder``, None for the
    form's own; ``float_stem`` / ``float_head``: the layers it keeps float32, likewise); see the module docstring.

    The frames are split: ``holdout`` of them (every k-th) are never trained on and judge the run — every
    ``check_every`` steps the activation ranges are re-measured (MinMax on the training frames, as the export
    will) and the simulated KL(fp32 ‖ int8) on the held-aside frames is computed; the weights with the lowest are
    kept, the starting weights included, so the fine-tuning never returns a model that reproduces fp32 worse on
    frames it has not seen than plain post-training quantization does. SGD with momentum: the distillation loss
    starts near zero in a sharp valley (the student *is* the teacher up to rounding), where Adam's sign-like
    first steps move every weight coherently and diverged on resnet18 even at 2 % of a rounding step per step.

    Returns the fine-tuned fused model (the original weights when no checkpoint beat them) and a record of the
    run: the simulated agreement / mean TV / KL with fp32 on the held-aside frames before and after."""
    if activations not in FORMS:
        raise ValueError(f"activations must be one of {tuple(FORMS)}, got {activations!r}")
    if len(frames) < 2:
        raise ValueError("quantization-aware fine-tuning needs at least 2 calibration frames")
    untraced = [i for i, b in enumerate(fused.branches) if not isinstance(b, torch.fx.GraphModule)]
    if untraced:  # fuse.fold_batchnorm leaves a network torch.fx cannot trace as it is (its card's fuse notes say so)
        from socketedge.errors import ModelError

        raise ModelError(f"source {untraced[0]} could not be traced by torch.fx when fused, so int8 fine-tuning "
                         "cannot find its quantization points; export without --int8-finetune")
    form = FORMS[activations]
    if reduce_range is not None:  # the weight range Int8Builder is given: 7-bit [-64, 64] or 8-bit [-127, 127]
        form = replace(form, weight_max=64 if reduce_range else 127)
    rng = np.random.default_rng(seed)
    every = max(2, int(round(1 / holdout))) if holdout > 0 else 0
    val_idx = list(range(0, len(frames), every)) if every else []
    train_idx = [i for i in range(len(frames)) if i not in val_idx] or list(range(len(frames)))
    val_idx = val_idx or train_idx
    inputs = _inputs(fused, frames)
    train = [x[train_idx] for x in inputs]
    val = [x[val_idx] for x in inputs]
    teachers = [b.eval() for b in fused.branches]
    students, acts, weights = [], [], []
    for b in fused.branches:
        s, a, w = instrument(b, form, float_modules(b, float_stem, float_head))
        for p in s.parameters():
            p.requires_grad_(True)
        students.append(s.eval())  # no BatchNorm left and no dropout wanted: eval forward, trained weights
        acts += a
        weights += w
    bp = fused.branch_preprocess
    with torch.no_grad():
        val_target = _mixed_log_probs([t(val[i]) for t, i in zip(teachers, bp)], fused.zeta)

    def check() -> dict:
        """Ranges re-measured on the training frames, then the simulated int8 against fp32 on the held-aside."""
        _observe(students, acts, train, bp, batch)
        with torch.no_grad():
            pred = _mixed_log_probs([s(val[i]) for s, i in zip(students, bp)], fused.zeta)
        errors = prob_errors(pred.exp().numpy(), val_target.exp().numpy())
        return {"agreement": errors["agreement"], "mean_tv": errors["mean_tv"],
                "kl": float(_kl(pred, val_target).mean())}

    def snapshot() -> list[dict]:
        return [{k: v.detach().clone() for k, v in s.state_dict().items()} for s in students]

    before = check()
    best, best_step, best_state = before, 0, snapshot()
    history = [{"step": 0, **before}]
    params = [p for s in students for p in s.parameters()]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    n = len(train_idx)
    task = progress.add_task("int8 fine-tuning", total=steps, terms="") if progress is not None else None
    losses = []
    for step in range(1, steps + 1):
        idx = torch.from_numpy(rng.integers(0, n, min(batch, n)))
        xs = _augment([x[idx] for x in train], rng, mix)
        with torch.no_grad():
            target = _mixed_log_probs([t(xs[i]) for t, i in zip(teachers, bp)], fused.zeta)
        pred = _mixed_log_probs([s(xs[i]) for s, i in zip(students, bp)], fused.zeta)
        loss = _kl(pred, target).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % check_every == 0 or step == steps:
            now = check()
            history.append({"step": step, **now})
            if now["kl"] < best["kl"]:
                best, best_step, best_state = now, step, snapshot()
        if task is not None:
            progress.update(task, advance=1, terms=f"kl {np.mean(losses[-check_every:]):.4f} · held-aside kl "
                                                   f"{history[-1]['kl']:.4f} (best {best['kl']:.4f})")
    if task is not None:
        progress.remove_task(task)
    for s, state in zip(students, best_state):
        s.load_state_dict(state)
    tuned = copy.deepcopy(fused)
    tuned.branches = nn.ModuleList([strip(s) for s in students])
    record = {"activations": activations, "weight_max": form.weight_max, "float_stem": float_stem,
              "float_head": float_head, "steps": steps, "lr": lr, "batch": batch, "mix": mix,
              "train_frames": len(train_idx), "held_aside_frames": len(val_idx),
              # which of ``frames`` were never trained on (None when there were too few to hold any aside)
              "held_aside": val_idx if set(val_idx).isdisjoint(train_idx) else None,
              "quantized_tensors": len(acts), "quantized_weights": len(weights),
              "before": before, "after": best, "kept_step": best_step, "history": history}
    return QATResult(tuned.eval(), record)
