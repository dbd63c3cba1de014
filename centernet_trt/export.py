"""Export an upstream CenterNet model from the patched tree to ONNX with a DCNv2 (or DeformConv) op.

    python -m centernet_trt.export --arch resdcn_18 --task ctdet --model random --output build/ctdet_resdcn_18.onnx

Input ``input`` (N,3,H,W float32, normalised as upstream: (BGR/255 - mean) / std); outputs named after the
heads, in the overlay's ``HEAD_ORDER`` (ctdet: hm, reg, wh). The model description is stored as ``metadata.ModelMeta``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from . import heads as heads_mod
from . import metadata, upstream
from .errors import UserError, cli
from .fsutil import sha256_file

DCN_OPS = ("dcnv2", "deformconv")
DEFAULT_DOMAIN = "centernet_trt"
DEFAULT_OPSET = 19          # DeformConv needs 19; TensorRT 10/11 parse it
OPSET_RANGE = (11, 20)      # what the TorchScript exporter emits
DYNAMIC_TRACE_BATCH = 2     # trace a dynamic export at N>1 so nothing specialises on N == 1
DEFAULT_SEED = 0


@dataclass
class Prepared:
    """A built network with its weights, ready to export in any batch/DCN mode."""
    cfg: heads_mod.ModelConfig
    net: object                 # FlatHeads(model) in eval mode
    model: object               # the upstream network inside it
    checkpoint: str             # file name or "random"
    checkpoint_path: str
    checkpoint_sha256: str
    seed: int | None
    weights_sha256: str
    n_dcn: int


def _apply_compat() -> None:
    """The recipe's PyTorch 1.0/1.1 tracing fix, in memory and only where needed (a no-op elsewhere)."""
    from .compat import apply_export_shims

    apply_export_shims()


def check_output_path(path: str | Path) -> Path:
    """Fail before any work if ``path`` cannot be written (nothing is created here)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"output {path} is a directory; pass a file name such as {path / 'model.onnx'}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: {parent} is not a writable directory; choose another --output")
    return path


def parse_batch(text) -> str:
    text = str(text).strip().lower()
    if text == "dynamic" or (text.isdigit() and int(text) >= 1):
        return str(int(text)) if text.isdigit() else text
    raise UserError(f"batch {text!r} is not valid; use BATCH=1, a positive number, or BATCH=dynamic")


def check_opset(opset: int, dcn_op: str) -> int:
    low, high = OPSET_RANGE
    if dcn_op == "deformconv":
        low = 19
    if not low <= opset <= high:
        raise UserError(f"opset {opset} is not supported for DCN_OP={dcn_op}; use OPSET between {low} and {high}")
    return opset


def prepare(arch: str, task: str, model: str = "random", num_classes: int | None = None,
            input_hw: tuple[int, int] | None = None, unsafe_load: bool = False, seed: int = DEFAULT_SEED,
            tree: Path | None = None, quiet: bool = False) -> Prepared:
    """Build (arch, task) from the patched tree with a checkpoint's weights or reproducible random ones."""
    from . import checkpoint as ckpt

    heads_mod.validate(arch, task)
    state = None
    if model != "random":
        state = ckpt.read_state_dict(model, unsafe=unsafe_load)
        if task == "ctdet" and num_classes is None:
            num_classes = heads_mod.num_classes_in(state)
    upstream.import_tree(tree)
    _apply_compat()
    cfg = heads_mod.config(arch, task, num_classes=num_classes, input_hw=input_hw)
    net_model = heads_mod.build(cfg)
    if state is None:
        if not quiet:
            print(f"warning: MODEL=random: every weight is random (seed {seed}), offset/mask convs included; "
                  "the ONNX is for pipeline tests only and says so in its metadata", file=sys.stderr)
        ckpt.randomize(net_model, seed, input_hw=(cfg.input_h, cfg.input_w))
        name, path, sha = "random", "", ""
    else:
        ckpt.load_strict(net_model, state, where=f"checkpoint {model}")
        name, path, sha, seed = Path(model).name, str(model), sha256_file(model), None
    net_model.eval()
    return Prepared(cfg=cfg, net=heads_mod.flat(net_model, cfg), model=net_model, checkpoint=name,
                    checkpoint_path=path, checkpoint_sha256=sha, seed=seed,
                    weights_sha256=ckpt.state_digest(net_model), n_dcn=len(ckpt.dcn_modules(net_model)))


def to_onnx(prep: Prepared, batch: str = "1", dcn_op: str = "dcnv2", dcn_domain: str = DEFAULT_DOMAIN,
            opset: int = DEFAULT_OPSET, slim: bool = False, dynamic_hw: bool = False):
    """Trace ``prep`` into an ``onnx.ModelProto`` carrying our metadata; checked with ``onnx.checker``.

    ``dynamic_hw``: H and W become dynamic axes (outputs H/4, W/4); the traced size (``prep.cfg``) stays
    recorded as input_h/input_w, the default size for checks and the engine's opt shape."""
    import onnx
    import torch
    from models.networks.dcn import onnx_export_mode  # overlay: selects the symbolic's output form

    if dcn_op not in DCN_OPS:
        raise UserError(f"unknown DCN_OP {dcn_op!r}; choose one of: {', '.join(DCN_OPS)}")
    batch = parse_batch(batch)
    check_opset(opset, dcn_op)
    cfg = prep.cfg
    names = [n for n, _ in cfg.heads]
    n = DYNAMIC_TRACE_BATCH if batch == "dynamic" else int(batch)
    dummy = torch.zeros(n, 3, cfg.input_h, cfg.input_w)
    dynamic_axes = {k: dict(_dynamic_dims(batch, dynamic_hw, k != "input")) for k in ["input", *names]}
    dynamic_axes = {k: v for k, v in dynamic_axes.items() if v} or None
    domain = dcn_domain if dcn_op == "dcnv2" else ""
    buf = io.BytesIO()
    with onnx_export_mode(op=dcn_op, domain=domain), warnings.catch_warnings(), torch.no_grad(), \
            contextlib.redirect_stdout(io.StringIO()):
        # The legacy-exporter notice and tracer warnings about upstream's Python control flow (fixed shapes
        # are what we export) are noise here; real failures raise.
        warnings.simplefilter("ignore")
        torch.onnx.export(prep.net, (dummy,), buf, input_names=["input"], output_names=names,
                          dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False,
                          do_constant_folding=True, custom_opsets={domain: 1} if domain and prep.n_dcn else None)
    model = onnx.load_from_string(buf.getvalue())
    _check_dcn_nodes(model, prep.n_dcn, dcn_op)
    _set_output_shapes(model, cfg, batch, dynamic_hw)
    if slim:
        import onnxslim

        with contextlib.redirect_stdout(io.StringIO()):
            model = onnxslim.slim(model)
    meta = metadata.ModelMeta(
        arch=cfg.arch, task=cfg.task, heads=[tuple(h) for h in cfg.heads], input_h=cfg.input_h,
        input_w=cfg.input_w, mean=cfg.mean, std=cfg.std, down_ratio=cfg.down_ratio, num_classes=cfg.num_classes,
        batch=batch, dcn_op=dcn_op if prep.n_dcn else "none", dcn_domain=domain if prep.n_dcn else "",
        upstream_commit=upstream.PINNED_COMMIT, checkpoint=prep.checkpoint,
        checkpoint_sha256=prep.checkpoint_sha256, random_weights=prep.checkpoint == "random",
        num_joints=cfg.num_joints, opset=opset,
        extra={"head_conv": cfg.head_conv, "stride": cfg.stride, "exporter": "torchscript",
               "torch": torch.__version__, "slim": bool(slim), "weights_sha256": prep.weights_sha256,
               "checkpoint_path": prep.checkpoint_path, "dcn_layers": prep.n_dcn,
               **({"dynamic_hw": True} if dynamic_hw else {}),
               **({"random_seed": prep.seed, "random_recipe": _recipe()} if prep.checkpoint == "random" else {})})
    metadata.attach(model, meta)
    check_model(model)
    return model


def _recipe() -> int:
    from .checkpoint import RANDOM_RECIPE
    return RANDOM_RECIPE


def _check_dcn_nodes(model, expected: int, dcn_op: str) -> None:
    op_type = "DCNv2" if dcn_op == "dcnv2" else "DeformConv"
    found = sum(node.op_type == op_type for node in model.graph.node)
    if expected and found != expected:  # the overlay symbolic was bypassed: a broken tree, not user input
        raise RuntimeError(f"expected {expected} {op_type} nodes, the export has {found}; "
                           "is the overlay DCN installed (`make patch`)?")


def _dynamic_dims(batch: str, dynamic_hw: bool, output: bool):
    """(axis, name) of the dynamic axes of the input (or, ``output``=True, of a head)."""
    if batch == "dynamic":
        yield 0, "batch"
    if dynamic_hw:
        yield 2, "height/4" if output else "height"
        yield 3, "width/4" if output else "width"


def _set_output_shapes(model, cfg, batch: str, dynamic_hw: bool = False) -> None:
    """Declare every output's full shape (shape inference stops at a custom op)."""
    oh, ow = cfg.input_h // cfg.down_ratio, cfg.input_w // cfg.down_ratio
    channels = dict(cfg.heads)
    named = dict(_dynamic_dims(batch, dynamic_hw, output=True))
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        want = [int(batch) if batch != "dynamic" else 0, channels[out.name], oh, ow]
        want = [named.get(axis, v) for axis, v in enumerate(want)]
        del dims[:]
        for v in want:
            d = dims.add()
            if isinstance(v, str):
                d.dim_param = v
            else:
                d.dim_value = v


def check_model(model) -> None:
    """``onnx.checker`` full check. The recipe's default-domain DCNv2 has no ONNX schema, so that form is
    checked with its DCNv2 nodes moved to a custom domain (everything else is checked as written)."""
    import onnx

    probe = model
    if any(n.op_type == "DCNv2" and n.domain == "" for n in model.graph.node):
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        for node in probe.graph.node:
            if node.op_type == "DCNv2" and node.domain == "":
                node.domain = DEFAULT_DOMAIN
        if not any(o.domain == DEFAULT_DOMAIN for o in probe.opset_import):
            probe.opset_import.add(domain=DEFAULT_DOMAIN, version=1)
    onnx.checker.check_model(probe, full_check=True)


def save(model, output: str | Path) -> Path:
    import onnx

    from .fsutil import atomic_path

    with atomic_path(output) as tmp:
        onnx.save(model, str(tmp))
    return Path(output)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m centernet_trt.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", required=True, help=f"one of {', '.join(heads_mod.ARCHS)}")
    p.add_argument("--task", default="ctdet", help=f"one of {', '.join(heads_mod.TASKS)} (default ctdet)")
    p.add_argument("--model", default="random", help="checkpoint .pth, or 'random' (default)")
    p.add_argument("--input", default=None,
                   help="HxW or one side (default: upstream's, 512x512), or 'dynamic': any H and W that are "
                        "multiples of the arch's stride (32; hourglass 128), traced and checked at 512x512")
    p.add_argument("--batch", default="1", help="1, a fixed N, or 'dynamic' (default 1)")
    p.add_argument("--dcn-op", default="dcnv2", help="dcnv2 (default) or deformconv (standard ONNX, opset 19)")
    p.add_argument("--dcn-domain", default=DEFAULT_DOMAIN,
                   help=f"ONNX domain of DCNv2 nodes (default {DEFAULT_DOMAIN}; '' = the recipe's default-domain form)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--num-classes", type=int, default=None,
                   help="ctdet classes (default: from the checkpoint, else 80)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed for MODEL=random (default 0)")
    p.add_argument("--output", required=True, help="ONNX file to write (e.g. build/ctdet_resdcn_18.onnx)")
    p.add_argument("--unsafe-load", action="store_true",
                   help="allow a checkpoint that needs arbitrary code to unpickle (only for trusted files)")
    p.add_argument("--slim", action="store_true", help="simplify the graph with onnxslim (outputs unchanged)")
    p.add_argument("--tree", default=None, help="patched CenterNet tree (default build/CenterNet or CENTERNET_TREE)")
    return p


def _input_text(meta) -> str:
    if meta.dynamic_hw:
        return f"dynamic HxW (multiples of {meta.stride}; traced at {meta.input_h}x{meta.input_w})"
    return f"{meta.input_h}x{meta.input_w}"


@cli
def main(argv=None):
    args = build_parser().parse_args(argv)
    heads_mod.validate(args.arch, args.task)
    dynamic_hw = str(args.input).strip().lower() == "dynamic"
    input_hw = None if dynamic_hw else heads_mod.parse_input_size(args.input)
    batch = parse_batch(args.batch)
    if args.dcn_op not in DCN_OPS:
        raise UserError(f"unknown DCN_OP {args.dcn_op!r}; choose one of: {', '.join(DCN_OPS)}")
    check_opset(args.opset, args.dcn_op)
    output = check_output_path(args.output)
    if args.model != "random" and not Path(args.model).is_file():
        raise UserError(f"checkpoint {args.model} not found; pass MODEL=<path to .pth> or MODEL=random")
    upstream.require_patched(Path(args.tree) if args.tree else None)
    prep = prepare(args.arch, args.task, args.model, num_classes=args.num_classes, input_hw=input_hw,
                   unsafe_load=args.unsafe_load, seed=args.seed, tree=Path(args.tree) if args.tree else None)
    model = to_onnx(prep, batch=batch, dcn_op=args.dcn_op, dcn_domain=args.dcn_domain, opset=args.opset,
                    slim=args.slim, dynamic_hw=dynamic_hw)
    save(model, output)
    meta = metadata.read(model)
    heads_txt = ", ".join(f"{n} {c}" for n, c in meta.heads)
    dcn = f"{prep.n_dcn} x {'DCNv2' if meta.dcn_op == 'dcnv2' else 'DeformConv'}" if prep.n_dcn else "no DCN"
    print(f"wrote {output} ({output.stat().st_size / 2**20:.1f} MiB): {meta.arch} {meta.task}, "
          f"input {_input_text(meta)}, batch {meta.batch}, opset {meta.opset}, {dcn}; "
          f"outputs {heads_txt}; weights {meta.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
