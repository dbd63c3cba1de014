"""Check an exported ONNX numerically: ONNX Runtime (CPU) against the patched PyTorch model, every output.

    python -m centernet_trt.check_onnx --onnx build/ctdet_resdcn_18.onnx [--model ckpt.pth]

The PyTorch model is rebuilt from the ONNX's metadata with the same weights: the checkpoint (sha256 must
match) or, for MODEL=random, the recorded seed (the weights digest must match). ONNX Runtime has no DCNv2
kernel, so DCNv2 nodes are rewritten in memory to the standard ONNX DeformConv (opset 19) - the same
computation with inputs reordered. Pass: max |Δ| <= 1e-4 and ‖Δ‖/‖ref‖ <= 1e-5 per output (fp32).
A dynamic-H/W export (INPUT=dynamic) is checked at two sizes: its recorded default and ``second_size``.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import metadata, upstream
from .errors import UserError, cli
from .fsutil import sha256_file

ATOL = 1e-4
RTOL = 1e-5
DYNAMIC_CHECK_BATCH = 2
DEFORMCONV_OPSET = 19


@dataclass
class OutputDiff:
    name: str
    shape: tuple
    max_abs: float
    rel: float
    ok: bool


def _ints(attr) -> list[int]:
    import onnx

    return [attr.i] if attr.type == onnx.AttributeProto.INT else list(attr.ints)


def _pair(values: list[int]) -> list[int]:
    return values * 2 if len(values) == 1 else values


def ort_runnable(model):
    """A copy of ``model`` that ONNX Runtime can run: DCNv2(input, offset, mask, weight, bias) nodes
    become DeformConv(X, W, offset, B, mask) with the same stride/padding/dilation/groups."""
    import onnx
    from onnx import helper, version_converter

    model_copy = onnx.ModelProto()
    model_copy.CopyFrom(model)
    model = model_copy
    dcn = [n for n in model.graph.node if n.op_type == "DCNv2"]
    if not dcn:
        return model
    domains = {n.domain for n in dcn}
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < DEFORMCONV_OPSET:
        # Convert the standard ops first, with DCNv2 parked in a custom domain the converter passes over.
        for node in dcn:
            node.domain = "centernet_trt.check"
        model.opset_import.add(domain="centernet_trt.check", version=1)
        model = version_converter.convert_version(model, DEFORMCONV_OPSET)
    nodes = []
    for node in model.graph.node:
        if node.op_type != "DCNv2":
            nodes.append(node)
            continue
        attrs = {a.name: _ints(a) for a in node.attribute}
        x, offset, mask, weight, bias = node.input
        pads = _pair(attrs.get("padding", [0]))
        nodes.append(helper.make_node(
            "DeformConv", [x, weight, offset, bias, mask], list(node.output), name=node.name + "_as_DeformConv",
            dilations=_pair(attrs.get("dilation", [1])), strides=_pair(attrs.get("stride", [1])),
            pads=pads + pads, group=attrs.get("groups", [1])[0],
            offset_group=attrs.get("deformable_group", [1])[0]))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    keep = [o for o in model.opset_import if o.domain not in domains | {"centernet_trt.check"} or o.domain == ""]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = max(o.version, DEFORMCONV_OPSET)
    return model


def run_onnxruntime(model, x: np.ndarray) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(ort_runnable(model).SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {"input": x})))


def run_torch(net, x: np.ndarray) -> dict:
    import torch

    with torch.no_grad():
        outs = net(torch.from_numpy(x))
    return dict(zip(net.head_order, (o.numpy() for o in outs)))


def offset_stats(model, x: np.ndarray) -> dict | None:
    """How deformable the run really is: |offset| (pixels) and mask over every DCN layer."""
    import torch

    from .checkpoint import dcn_modules

    seen = []

    def hook(conv, inp, out):
        o1, o2, m = torch.chunk(out, 3, dim=1)
        seen.append((torch.cat((o1, o2), 1).abs(), torch.sigmoid(m)))

    layers = dcn_modules(model)
    if not layers:
        return None
    hooks = [m.conv_offset_mask.register_forward_hook(hook) for m in layers]
    try:
        with torch.no_grad():
            model(torch.from_numpy(x))
    finally:
        for h in hooks:
            h.remove()
    return {"layers": len(layers),
            "mean_abs_offset": float(np.mean([o.mean().item() for o, _ in seen])),
            "max_abs_offset": float(max(o.max().item() for o, _ in seen)),
            "mean_mask": float(np.mean([m.mean().item() for _, m in seen]))}


def compare(model, net, x: np.ndarray, atol: float = ATOL, rtol: float = RTOL) -> list[OutputDiff]:
    """Every ONNX output against the PyTorch ``net`` (FlatHeads) on input ``x``."""
    got, ref = run_onnxruntime(model, x), run_torch(net, x)
    order = [o.name for o in model.graph.output]
    if order != list(net.head_order):
        raise UserError(f"ONNX outputs {order} are not the model's head order {list(net.head_order)}; re-export")
    diffs = []
    for name in order:
        a, b = got[name].astype(np.float64), ref[name].astype(np.float64)
        if a.shape != b.shape:
            diffs.append(OutputDiff(name, a.shape, float("inf"), float("inf"), False))
            continue
        delta = np.abs(a - b)
        max_abs = float(delta.max()) if delta.size else 0.0
        rel = float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))
        ok = bool(np.isfinite(a).all() and max_abs <= atol and rel <= rtol)
        diffs.append(OutputDiff(name, a.shape, max_abs, rel, ok))
    return diffs


def second_size(meta: metadata.ModelMeta) -> tuple[int, int]:
    """Another valid size for a dynamic-H/W check: about half the height, one stride wider (non-square,
    unlike the traced size, so a swapped or baked-in H/W shows)."""
    st = meta.stride
    return max(st, meta.input_h // 2 // st * st), meta.input_w + st


def check_sizes(meta: metadata.ModelMeta) -> list[tuple[int, int]]:
    sizes = [(meta.input_h, meta.input_w)]
    return sizes + [second_size(meta)] if meta.dynamic_hw else sizes


def rebuild(meta: metadata.ModelMeta, model_path: str | None = None, tree: Path | None = None):
    """The patched PyTorch model the ONNX was exported from, with the very same weights."""
    from . import checkpoint as ckpt
    from . import export

    extra = meta.extra or {}
    hw = (meta.input_h, meta.input_w)
    num_classes = meta.num_classes if meta.task == "ctdet" else None
    if meta.random_weights:
        if extra.get("random_recipe") != ckpt.RANDOM_RECIPE or "random_seed" not in extra:
            raise UserError("this ONNX's random weights come from another version of centernet-trt; "
                            "re-export it with `make onnx`")
        prep = export.prepare(meta.arch, meta.task, "random", num_classes=num_classes, input_hw=hw,
                              seed=int(extra["random_seed"]), tree=tree, quiet=True)
        source = f"random (seed {extra['random_seed']})"
    else:
        path = model_path or extra.get("checkpoint_path") or meta.checkpoint
        if not path or not Path(path).is_file():
            raise UserError(f"checkpoint {path or meta.checkpoint!r} used for this export is not found; "
                            "pass it with --model (MODEL=...)")
        if meta.checkpoint_sha256 and sha256_file(path) != meta.checkpoint_sha256:
            raise UserError(f"{path} is not the checkpoint this ONNX was exported from (sha256 differs); "
                            "pass the right --model or re-export")
        prep = export.prepare(meta.arch, meta.task, path, num_classes=num_classes, input_hw=hw, tree=tree,
                              quiet=True)
        source = Path(path).name
    want = extra.get("weights_sha256")
    if want and prep.weights_sha256 != want:
        raise UserError(f"rebuilt weights differ from the exported ones (torch {extra.get('torch')} at export); "
                        "re-export with this environment (`make onnx`)")
    return prep, source


def report(diffs: list[OutputDiff], atol: float = ATOL, rtol: float = RTOL) -> str:
    lines = [f"{'output':<10} {'shape':<20} {'max_abs':>9} {'rel':>9}"]
    for d in diffs:
        lines.append(f"{d.name:<10} {str(tuple(d.shape)):<20} {d.max_abs:9.2e} {d.rel:9.2e}  "
                     f"{'ok' if d.ok else 'FAIL'}")
    verdict = "PASS" if all(d.ok for d in diffs) else "FAIL"
    lines.append(f"{verdict}: max abs <= {atol:g} and rel <= {rtol:g} "
                 f"({sum(d.ok for d in diffs)}/{len(diffs)} outputs)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m centernet_trt.check_onnx", description=__doc__.split("\n\n")[0])
    p.add_argument("--onnx", required=True, help="ONNX exported by `make onnx`")
    p.add_argument("--model", default=None, help="checkpoint it was exported from (default: the recorded path)")
    p.add_argument("--batch", type=int, default=None,
                   help=f"batch to run a dynamic-batch ONNX at (default {DYNAMIC_CHECK_BATCH})")
    p.add_argument("--seed", type=int, default=None, help="input seed (default: fresh, printed)")
    p.add_argument("--atol", type=float, default=ATOL, help=f"max abs diff allowed (default {ATOL:g})")
    p.add_argument("--rtol", type=float, default=RTOL, help=f"‖Δ‖/‖ref‖ allowed (default {RTOL:g})")
    p.add_argument("--tree", default=None, help="patched CenterNet tree (default build/CenterNet or CENTERNET_TREE)")
    return p


@cli
def main(argv=None):
    import onnx
    import onnxruntime

    args = build_parser().parse_args(argv)
    meta = metadata.read(args.onnx)
    tree = Path(args.tree) if args.tree else None
    upstream.require_patched(tree)
    if meta.batch == "dynamic":
        n = args.batch or DYNAMIC_CHECK_BATCH
    else:
        n = int(meta.batch)
        if args.batch not in (None, n):
            raise UserError(f"{args.onnx} has a fixed batch {n}; drop --batch or export with BATCH=dynamic")
    prep, source = rebuild(meta, args.model, tree)
    model = onnx.load(args.onnx)
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    rng = np.random.default_rng(seed)
    dcn = {"dcnv2": "DCNv2 nodes run as DeformConv", "deformconv": "DeformConv", "none": "no DCN"}[meta.dcn_op]
    sizes = check_sizes(meta)
    shapes = " and ".join(f"{n}x3x{h}x{w}" for h, w in sizes)
    print(f"check-onnx {args.onnx}: {meta.arch} {meta.task}, input {shapes} (batch {meta.batch}"
          f"{', dynamic HxW' if meta.dynamic_hw else ''}), {dcn}; ONNX Runtime {onnxruntime.__version__} CPU "
          f"vs PyTorch; weights {source}, digest matches; input seed {seed}")
    ok = True
    for h, w in sizes:
        x = rng.standard_normal((n, 3, h, w)).astype(np.float32)
        if len(sizes) > 1:
            print(f"-- input {h}x{w}")
        stats = offset_stats(prep.model, x)
        if stats:
            print(f"DCN sampling: {stats['layers']} layers, mean |offset| {stats['mean_abs_offset']:.2f} px "
                  f"(max {stats['max_abs_offset']:.1f}), mean mask {stats['mean_mask']:.2f}")
            if stats["max_abs_offset"] == 0:
                print("warning: every DCN offset is 0 (untrained offset convs): sampling is not deformable here",
                      file=sys.stderr)
        diffs = compare(model, prep.net, x, args.atol, args.rtol)
        print(report(diffs, args.atol, args.rtol))
        ok = ok and all(d.ok for d in diffs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
