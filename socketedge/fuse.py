"""N adapted sources + ζ + preprocessing → one inference ``nn.Module`` with flat tensor I/O.

``FusedModel(frames) -> (probs, label)``: ``frames`` is the raw single-channel target frame (N, 1, H, W) in
sensor units (uint16 depth / uint8 NIR or thermal); ``probs`` = Σ_k ζ_k softmax(g_k(f_k(preprocess_k(frames))))
and ``label`` its argmax. Built for export: eval mode, BatchNorm folded into the preceding convolution / linear
layer, weight-norm parametrisations removed (the classifier becomes a plain Linear), ζ folded in as Python
constants, sources that share a preprocessing share its computation, and a single source is a single branch
(no mixing ops at all).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.fx
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from socketedge.data.preprocess import Preprocess
from socketedge.models.ensemble import Ensemble

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass
class FoldReport:
    """What fusing did to one source network (shown in the export metadata)."""

    batchnorm_folded: int = 0
    batchnorm_left: int = 0
    parametrizations_removed: int = 0
    notes: list[str] = field(default_factory=list)


class _LeafTracer(torch.fx.Tracer):
    """Keeps convolutions, linear and BatchNorm layers as call_module nodes even when subclassed (e.g. a
    TensorFlow-'SAME'-padding Conv2d whose forward computes padding from the input shape)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (*_CONVS, nn.Linear, *_BATCHNORMS)) or super().is_leaf_module(m, qualname)


def remove_parametrizations(module: nn.Module) -> int:
    """Bake every parametrisation (weight norm) of ``module`` into a plain parameter, in place; returns how
    many were removed."""
    count = 0
    for m in list(module.modules()):
        if parametrize.is_parametrized(m):
            # A deep copy shares its dynamically created "Parametrized<Class>" with the original, and removal
            # deletes the property from that class; give this module its own class so the original survives.
            cls = type(m)
            m.__class__ = type(cls.__name__, cls.__bases__,
                               {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")})
            for name in list(m.parametrizations.keys()):
                parametrize.remove_parametrizations(m, name, leave_parametrized=True)
                count += 1
    return count


def fold_batchnorm(module: nn.Module) -> tuple[nn.Module, FoldReport]:
    """Trace ``module`` (eval mode) and fold each BatchNorm that directly follows a conv / linear layer used
    only there into that layer's weights. A network torch.fx cannot trace is returned unchanged (its
    BatchNorms stay; the ONNX runtime still fuses them at load) and the report says so."""
    report = FoldReport()
    module = module.eval()
    try:
        graph = _LeafTracer().trace(module)
    except Exception as e:  # fx raises many types for untraceable Python control flow
        report.batchnorm_left = sum(isinstance(m, _BATCHNORMS) for m in module.modules())
        report.notes.append(f"not traceable by torch.fx ({type(e).__name__}); BatchNorm left unfolded")
        return module, report
    gm = torch.fx.GraphModule(module, graph)
    modules = dict(gm.named_modules())
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], _BATCHNORMS):
            continue
        bn = modules[node.target]
        prev = node.args[0]
        foldable = (isinstance(prev, torch.fx.Node) and prev.op == "call_module" and len(prev.users) == 1
                    and calls[prev.target] == 1 and bn.track_running_stats and bn.running_mean is not None)
        layer = modules[prev.target] if foldable else None
        if isinstance(layer, _CONVS):
            fused = fuse_conv_bn_eval(layer, bn)
        elif isinstance(layer, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
            fused = fuse_linear_bn_eval(layer, bn)
        else:
            report.batchnorm_left += 1
            continue
        _set_submodule(gm, prev.target, fused)
        modules[prev.target] = fused
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
        report.batchnorm_folded += 1
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm, report


def _set_submodule(root: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, new)


def inference_network(model: nn.Module) -> tuple[nn.Module, FoldReport]:
    """A copy of ``model`` ready for export: eval mode, no parametrisations, BatchNorm folded, no gradients."""
    net = copy.deepcopy(model).eval()
    removed = remove_parametrizations(net)
    net, report = fold_batchnorm(net)
    report.parametrizations_removed = removed
    for p in net.parameters():
        p.requires_grad_(False)
    return net, report


class FusedModel(nn.Module):
    """Raw frames → (probs, label) for an ensemble; see the module docstring."""

    def __init__(self, preprocess: list[Preprocess], branches: list[nn.Module], branch_preprocess: list[int],
                 zeta: list[float], class_names: list[str]):
        super().__init__()
        if not branches or len(branches) != len(branch_preprocess) or len(branches) != len(zeta):
            raise ValueError("one preprocessing index and one ζ per branch are needed")
        self.preprocess = nn.ModuleList(preprocess)
        self.branches = nn.ModuleList(branches)
        self.branch_preprocess = list(branch_preprocess)
        self.zeta = [float(z) for z in zeta]  # Python floats: traced as constants
        self.class_names = list(class_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = [p(frames) for p in self.preprocess]
        if len(self.branches) == 1:
            probs = self.branches[0](inputs[0]).softmax(dim=1)
        else:
            probs = None
            for z, branch, i in zip(self.zeta, self.branches, self.branch_preprocess):
                p = branch(inputs[i]).softmax(dim=1) * z
                probs = p if probs is None else probs + p
        return probs, probs.argmax(dim=1)


def fuse(ensemble: Ensemble) -> tuple[FusedModel, list[FoldReport]]:
    """Fuse an ensemble (a loaded bundle or a wrapped source checkpoint) into one export-ready module.

    Members with ζ_k = 0 contribute nothing and are dropped; the remaining ζ are kept exactly as they are.
    """
    zeta = ensemble.zeta.detach().cpu().tolist()
    keep = [k for k, z in enumerate(zeta) if z > 0] or list(range(len(zeta)))
    specs: dict[str, int] = {}
    preprocess: list[Preprocess] = []
    branches, branch_preprocess, reports = [], [], []
    for k in keep:
        member = ensemble.members[k]
        key = member.preprocess.spec.model_dump_json()
        if key not in specs:
            specs[key] = len(preprocess)
            preprocess.append(Preprocess(member.preprocess.spec).eval())
        net, report = inference_network(member.model)
        branches.append(net)
        branch_preprocess.append(specs[key])
        reports.append(report)
    fused = FusedModel(preprocess, branches, branch_preprocess, [zeta[k] for k in keep], ensemble.class_names)
    return fused.eval(), reports
