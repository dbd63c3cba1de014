"""Build a TensorRT engine from an exported ONNX, with the DCNv2 plugin loaded.

    python -m centernet_trt.engine --onnx build/ctdet_resdcn_18.onnx --plugin build/libdcnv2_plugin.so \
        --precision fp16 [--batch 1:4:8] [--hw 256x256:512x512:1024x1024] --output build/ctdet_resdcn_18_fp16.engine

A dynamic-H/W ONNX (``make onnx INPUT=dynamic``) gets an optimization profile over H and W too:
``--hw min:opt:max`` (each HxW, multiples of the arch's stride), default 128x128 : the exported default
size : 1024x1024.

fp16, per TensorRT version:
* TensorRT 10 (weakly typed): the FP16 builder flag; TensorRT picks fp16 kernels where it likes.
* TensorRT 11 (always strongly typed, no FP16 flag): tensor types come from the graph, so we write an
  fp16 copy of the ONNX beside it (``<name>.fp16.onnx``) and build that (``--fp16-mode graph`` forces
  this on TensorRT 10 too). Kept fp32 in that graph: the network input and outputs (casts inside the
  graph, so callers feed and read fp32 whatever the precision; the raw heatmap logits keep their range)
  and the operands ONNX defines as float only (Resize scales/roi). Everything else — weights, BN,
  DCNv2/DeformConv operands — becomes fp16; values beyond the fp16 range are clipped.

Writes the engine atomically plus a JSON sidecar (``<engine stem>.json``) that infer/compare check:
TensorRT version, GPU, compute capability, precision, plugin sha256, engine sha256, the ONNX's metadata.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from . import metadata
from .backends import (gpu_info, import_tensorrt, init_builtin_plugins, load_plugin,
                       sidecar_path, trt_major)
from .errors import UserError, cli
from .fsutil import atomic_path, sha256_file
from .heads import parse_input_size

DEFAULT_DYNAMIC_BATCH = (1, 1, 8)
DEFAULT_HW_MIN = (128, 128)     # dynamic H/W profile bounds unless --hw says otherwise; opt = metadata size
DEFAULT_HW_MAX = (1024, 1024)
FP16_MAX = float(np.finfo(np.float16).max)
# (op_type → input positions) that ONNX types as float32 only, or that carry sizes rather than data.
KEEP_FP32_INPUTS = {"Resize": (1, 2), "Upsample": (1,)}


# --- fp16 graph for strongly typed TensorRT ------------------------------------------------------

def to_fp16(model):
    """An fp16 copy of an fp32 ONNX model with fp32 inputs/outputs (see the module docstring)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
    model = copy.deepcopy(model)
    g = model.graph
    keep = {n.input[i] for n in g.node for i in KEEP_FP32_INPUTS.get(n.op_type, ()) if i < len(n.input) and n.input[i]}

    def half(tensor):
        arr = numpy_helper.to_array(tensor)
        out = numpy_helper.from_array(np.clip(arr, -FP16_MAX, FP16_MAX).astype(np.float16), tensor.name)
        tensor.CopyFrom(out)

    inits = {t.name for t in g.initializer}
    for t in g.initializer:
        if t.data_type == FLOAT and t.name not in keep:
            half(t)
    for node in g.node:
        if node.output and node.output[0] in keep:
            continue
        for attr in node.attribute:
            if node.op_type in ("Constant", "ConstantOfShape") and attr.type == onnx.AttributeProto.TENSOR \
                    and attr.t.data_type == FLOAT:
                half(attr.t)
            if node.op_type == "Cast" and attr.name == "to" and attr.i == FLOAT:
                attr.i = HALF

    nodes = []
    # fp32 graph inputs → one Cast each at the top.
    for inp in g.input:
        if inp.name in inits or inp.type.tensor_type.elem_type != FLOAT:
            continue
        cast = f"{inp.name}__fp16"
        nodes.append(helper.make_node("Cast", [inp.name], [cast], to=HALF, name=cast))
        for node in g.node:
            node.input[:] = [cast if x == inp.name else x for x in node.input]
    # Float-only operands fed by computed (now fp16) tensors get a Cast back to fp32.
    for node in g.node:
        for i in KEEP_FP32_INPUTS.get(node.op_type, ()):
            if i < len(node.input) and node.input[i] and node.input[i] not in inits:
                cast = f"{node.input[i]}__fp32_{node.name or len(nodes)}"
                nodes.append(helper.make_node("Cast", [node.input[i]], [cast], to=FLOAT, name=cast))
                node.input[i] = cast
        nodes.append(node)
    # fp32 graph outputs: the producer writes <name>__fp16, a final Cast restores <name> in fp32.
    for out in g.output:
        if out.type.tensor_type.elem_type != FLOAT:
            continue
        inner = f"{out.name}__fp16"
        for node in nodes:
            node.output[:] = [inner if x == out.name else x for x in node.output]
            node.input[:] = [inner if x == out.name else x for x in node.input]
        nodes.append(helper.make_node("Cast", [inner], [out.name], to=FLOAT, name=f"{out.name}__fp32"))
    del g.node[:]
    g.node.extend(nodes)
    # Intermediate types changed; let shape inference recompute them.
    del g.value_info[:]
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # custom ops (DCNv2) may stop inference; TensorRT does its own
        pass
    return model


# --- build --------------------------------------------------------------------------------------

def parse_batch(text: str | None) -> tuple[int, int, int] | None:
    """``"4"`` → (4, 4, 4); ``"1:4:8"`` → (1, 4, 8)."""
    if text is None or str(text).strip() == "":
        return None
    try:
        vals = [int(v) for v in str(text).split(":")]
    except ValueError:
        vals = []
    if len(vals) == 1:
        vals *= 3
    if len(vals) != 3 or not (0 < vals[0] <= vals[1] <= vals[2]):
        raise UserError(f"--batch {text!r} is not N or min:opt:max with 0 < min <= opt <= max (e.g. 1:4:8)")
    return tuple(vals)


def parse_hw(text: str | None) -> tuple[tuple[int, int], ...] | None:
    """``"512x512"`` → that size 3 times; ``"256x256:512x512:1024x1024"`` → (min, opt, max)."""
    if text is None or str(text).strip() == "":
        return None
    try:
        sizes = [parse_input_size(part) for part in str(text).split(":")]
    except UserError:
        sizes = []
    if None in sizes:  # an empty part, e.g. "256x256::1024x1024"
        sizes = []
    if len(sizes) == 1:
        sizes *= 3
    if len(sizes) != 3 or any(v <= 0 for s in sizes for v in s) or \
            not all(sizes[0][i] <= sizes[1][i] <= sizes[2][i] for i in range(2)):
        raise UserError(f"--hw {text!r} is not HxW or min:opt:max sizes with min <= opt <= max per side "
                        "(e.g. 256x256:512x512:1024x1024)")
    return tuple(sizes)


def hw_profile(dims, meta, hw) -> tuple[tuple[int, int], ...]:
    """(min, opt, max) input sizes: the ONNX's own for a fixed size, else ``hw`` or the defaults."""
    if dims[2] is not None and dims[3] is not None:
        fixed = (dims[2], dims[3])
        if hw and hw != (fixed,) * 3:
            raise UserError(f"the ONNX has a fixed input size {fixed[0]}x{fixed[1]}; re-export with "
                            "`make onnx INPUT=dynamic` to build for a range of sizes (HW=min:opt:max)")
        return (fixed,) * 3
    stride = meta.stride
    if hw is None:
        opt = (meta.input_h, meta.input_w)
        low = tuple(min(-(-v // stride) * stride, o) for v, o in zip(DEFAULT_HW_MIN, opt))
        high = tuple(max(v // stride * stride, o) for v, o in zip(DEFAULT_HW_MAX, opt))
        return low, opt, high
    bad = [f"{h}x{w}" for h, w in hw if h % stride or w % stride]
    if bad:
        raise UserError(f"--hw sizes {', '.join(bad)} are not multiples of {meta.arch}'s stride {stride}; "
                        f"use e.g. {stride * 4}x{stride * 4}:{meta.input_h}x{meta.input_w}:1024x1024")
    return hw


def input_shape(model) -> tuple[str, list]:
    inp = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}][0]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    return inp.name, dims


def batch_profile(dims, batch) -> tuple[int, int, int]:
    if dims[0] is not None:
        if batch and batch != (dims[0],) * 3:
            raise UserError(f"the ONNX has a fixed batch of {dims[0]}; re-export with BATCH=dynamic "
                            f"(or BATCH={':'.join(map(str, batch))}) to build for batch {':'.join(map(str, batch))}")
        return (dims[0],) * 3
    return batch or DEFAULT_DYNAMIC_BATCH


def trtexec_command(onnx_path, engine, plugin, precision, fp16_mode, name, hw, profile, workspace_mib,
                    dynamic: bool = True) -> str:
    """``hw``: the input (h, w), or a (min, opt, max) triple of them for a dynamic-H/W ONNX."""
    hws = hw if isinstance(hw[0], (tuple, list)) else (hw,) * 3
    shape = lambda i: f"{name}:{profile[i]}x3x{hws[i][0]}x{hws[i][1]}"  # noqa: E731
    cmd = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine}"]
    if plugin:
        cmd.append(f"--dynamicPlugins={plugin}")
    if precision == "fp16" and fp16_mode == "flag":
        cmd.append("--fp16")
    elif fp16_mode == "graph":
        cmd.append("--stronglyTyped")
    elif precision == "fp32":
        cmd.append("--noTF32")  # as build() clears TF32
    if dynamic:  # trtexec takes shapes only for dynamic inputs
        cmd += [f"--minShapes={shape(0)}", f"--optShapes={shape(1)}", f"--maxShapes={shape(2)}"]
    cmd.append(f"--memPoolSize=workspace:{workspace_mib}M")
    return " ".join(shlex.quote(c) for c in cmd)


def parse_errors(parser) -> str:
    """The parser's errors, each naming the failing node and its op."""
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        name = getattr(err, "node_name", lambda: "")() or f"#{err.node()}"
        op = getattr(err, "node_operator", lambda: "")() or "?"
        hint = " (is --plugin the DCNv2 plugin built with `make plugin`?)" if op == "DCNv2" else ""
        lines.append(f"node {name!r} (op {op}): {err.desc()}{hint}")
    return "; ".join(lines) or "no details from the parser"


def build(onnx_path, plugin, precision: str, batch, output, workspace_mib: int = 4096,
          fp16_mode: str = "auto", hw: str | None = None) -> dict:
    import onnx

    onnx_path, output = Path(onnx_path), Path(output)
    meta = metadata.read(onnx_path)
    model = onnx.load(str(onnx_path), load_external_data=False)
    needs_plugin = any(n.op_type == "DCNv2" for n in model.graph.node)
    if needs_plugin and plugin is None:
        raise UserError(f"{onnx_path} has DCNv2 nodes: pass --plugin build/libdcnv2_plugin.so (`make plugin`)")
    if not needs_plugin and plugin is not None:
        # `make engine` always passes PLUGIN; a DeformConv export runs on TensorRT's built-in plugin.
        print(f"note: {onnx_path.name} has no DCNv2 nodes; not loading {plugin}")
        plugin = None
    if plugin is not None and not Path(plugin).is_file():
        raise UserError(f"plugin library {plugin} not found: build it with `make plugin`")
    name, dims = input_shape(model)
    profile = batch_profile(dims, parse_batch(batch))
    hws = hw_profile(dims, meta, parse_hw(hw))
    hw = hws[1]

    trt = import_tensorrt()
    if fp16_mode == "auto":
        fp16_mode = "flag" if trt_major(trt) < 11 and hasattr(trt.BuilderFlag, "FP16") else "graph"
    if fp16_mode == "flag" and not hasattr(trt.BuilderFlag, "FP16"):
        raise UserError(f"TensorRT {trt.__version__} has no FP16 builder flag (strongly typed); use --fp16-mode graph")
    if precision == "fp32":
        fp16_mode = "none"
    logger = trt.Logger(trt.Logger.WARNING)
    init_builtin_plugins(trt, logger)
    if plugin is not None:
        load_plugin(trt, plugin, logger)
    source = onnx_path
    if precision == "fp16" and fp16_mode == "graph":
        source = onnx_path.with_suffix(".fp16.onnx")
        with atomic_path(source) as tmp:
            onnx.save(to_fp16(onnx.load(str(onnx_path))), str(tmp))
    device = gpu_info()
    dynamic_hw = dims[2] is None or dims[3] is None
    dynamic = dims[0] is None or dynamic_hw
    trtexec = trtexec_command(source, output, plugin, precision, fp16_mode, name, hws, profile, workspace_mib, dynamic)
    print(f"equivalent: {trtexec}")

    builder = trt.Builder(logger)
    flags = 0
    if fp16_mode == "graph" and trt_major(trt) < 11:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        raise UserError(f"TensorRT cannot parse {source}: {parse_errors(parser)}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if fp16_mode == "flag":
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32: comparable to ONNX Runtime at 1e-3
    if dynamic:
        prof = builder.create_optimization_profile()
        prof.set_shape(name, *[(n, 3, *s) for n, s in zip(profile, hws)])
        config.add_optimization_profile(prof)
    start = time.time()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UserError(f"TensorRT could not build an engine from {source} (its log above says why)")
    blob = bytes(serialized)
    side = {
        "tensorrt": trt.__version__, **device, "precision": precision, "fp16_mode": fp16_mode,
        "batch": {"min": profile[0], "opt": profile[1], "max": profile[2]}, "input": [name, 3, *hw],
        "hw": {"min": list(hws[0]), "opt": list(hws[1]), "max": list(hws[2])} if dynamic_hw else None,
        "workspace_mib": workspace_mib, "engine_sha256": hashlib.sha256(blob).hexdigest(),
        "onnx": {"path": onnx_path.name, "sha256": sha256_file(onnx_path), "built_from": source.name},
        "plugin": {"path": Path(plugin).name, "sha256": sha256_file(plugin), "creator": "DCNv2", "version": "1"}
        if plugin is not None else None,
        "model": dataclasses.asdict(meta), "trtexec": trtexec, "build_seconds": round(time.time() - start, 1),
    }
    with atomic_path(output) as tmp_engine, atomic_path(sidecar_path(output)) as tmp_side:
        tmp_engine.write_bytes(blob)
        tmp_side.write_text(json.dumps(side, indent=2) + "\n")
    sizes = f", HxW {':'.join(f'{h}x{w}' for h, w in hws)}" if dynamic_hw else ""
    print(f"wrote {output} ({len(blob) / 2**20:.1f} MiB, {precision}, batch {':'.join(map(str, profile))}{sizes}, "
          f"{device['gpu']}) and {sidecar_path(output).name}")
    return side


@cli
def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m centernet_trt.engine", description=__doc__.split("\n")[0])
    ap.add_argument("--onnx", required=True, help="exported model (make onnx)")
    ap.add_argument("--plugin", help="libdcnv2_plugin.so (make plugin); needed when the ONNX has DCNv2 nodes")
    ap.add_argument("--precision", choices=("fp32", "fp16"), default="fp16")
    ap.add_argument("--batch", help=f"N or min:opt:max for a dynamic-batch ONNX (default {':'.join(map(str, DEFAULT_DYNAMIC_BATCH))})")
    ap.add_argument("--hw", help="HxW or min:opt:max sizes for a dynamic-H/W ONNX (make onnx INPUT=dynamic); "
                    f"default {'x'.join(map(str, DEFAULT_HW_MIN))}:<exported size>:{'x'.join(map(str, DEFAULT_HW_MAX))}")
    ap.add_argument("--output", help="engine path (default: <onnx stem>_<precision>.engine)")
    ap.add_argument("--workspace", type=int, default=4096, help="builder workspace in MiB")
    ap.add_argument("--fp16-mode", choices=("auto", "flag", "graph"), default="auto",
                    help="auto: builder flag on TensorRT 10, fp16 ONNX graph on TensorRT 11")
    args = ap.parse_args(argv)
    output = args.output or str(Path(args.onnx).with_name(f"{Path(args.onnx).stem}_{args.precision}.engine"))
    build(args.onnx, args.plugin, args.precision, args.batch, output, args.workspace, args.fp16_mode, args.hw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
