"""Where a DCNv2 call's device time goes: per-kernel durations of ours and of torchvision, from a CUDA-graph replay.

For each CenterNet DCN shape one call is captured into a CUDA graph, replayed --reps times under torch.profiler
(CUPTI kernel records), and the table gives the median span of a call (first kernel start to last kernel end: launch
gaps and, for ours, programmatic-dependent-launch overlap included) and, for ours, each kernel's median duration.
torchvision gets its span only: on the H200 (torch 2.11) its deformable_im2col kernel was missing from the records
of graph replays (present in eager ones), so a per-kernel list of it would leave out its largest kernel.
Usage (GPU, after `bash bench/gpu_run.sh` built the library): python3 bench/trace_dcn.py [--modes fp16,tf32]
"""
from __future__ import annotations

import argparse
import re
import statistics
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile
from torchvision.ops import deform_conv2d

import dcn_ctypes
from bench_dcn import SHAPES, capture_graph, inputs, shapes_arg


def short(name: str) -> str:
    """A kernel name without namespaces and argument lists, template arguments kept (they name our variants)."""
    name = re.sub(r"\(.*$", "", name.replace("(anonymous namespace)::", "").replace("<unnamed>::", ""))
    name = re.sub(r"^void ", "", name)
    return re.sub(r"centernet_trt::", "", name)[:60]


def trace(fn, reps: int):
    """Per-kernel median duration (us) and median call span (us) over `reps` replays of a one-call graph."""
    graph = capture_graph(fn, 1)
    for _ in range(5):
        graph.replay()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            graph.replay()
            torch.cuda.synchronize()  # one call per window, so spans do not mix
    kernels = sorted((e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
                      and "memcpy" not in e.name.lower() and "memset" not in e.name.lower()),
                     key=lambda e: e.time_range.start)
    per_call = len(kernels) // reps if reps else 0
    durations, spans = defaultdict(list), []
    for r in range(reps):
        call = kernels[r * per_call:(r + 1) * per_call]
        if not call:
            continue
        spans.append(max(e.time_range.end for e in call) - min(e.time_range.start for e in call))
        for e in call:
            durations[short(e.name)].append(e.time_range.end - e.time_range.start)
    return {k: statistics.median(v) for k, v in durations.items()}, statistics.median(spans) if spans else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=None)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--modes", default="fp16,tf32", help="precisions: fp16, tf32, fp32")
    ap.add_argument("--variant", type=int, default=0, help=dcn_ctypes.VARIANTS_HELP + " (one of them)")
    ap.add_argument("--shapes", type=shapes_arg, default=SHAPES,
                    help="layers N,C,H,W,COUT separated by ';' (default: the issue's eight CenterNet DCN layers)")
    args = ap.parse_args()
    lib = dcn_ctypes.load(args.lib)
    lib.centernet_dcnv2_set_variant(args.variant)
    gen = torch.Generator(device="cuda").manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    all_modes = {"fp16": (torch.float16, True), "tf32": (torch.float32, True), "fp32": (torch.float32, False)}
    print(f"card: {torch.cuda.get_device_name()}; median us per kernel over {args.reps} replays of a one-call graph")
    print("| N,C,H,W -> Cout | prec | ours: span (kernels) | torchvision: span |")
    print("|---|---|---|---|")
    for shape in args.shapes:
        for mode in args.modes.split(","):
            dtype, tf32 = all_modes[mode]
            n, c, h, w, cout = shape
            x, off, mask, weight, bias = inputs(shape, dtype, gen, "random")
            dcn = dcn_ctypes.DCN(lib, (n, c, h, w), cout, dtype=dtype, allow_tf32=tf32)
            out = torch.empty(dcn.out_shape, dtype=dtype, device="cuda")
            ours, ours_span = trace(lambda: dcn(x, off, mask, weight, bias, out), args.reps)
            _, tv_span = trace(lambda: deform_conv2d(x, off, weight, bias, padding=(1, 1), mask=mask), args.reps)
            kernels = ", ".join(f"{k} {v:.1f}" for k, v in ours.items())
            print(f"| {n},{c},{h},{w} -> {cout} | {mode} | {ours_span:.1f} ({kernels}) | {tv_span:.1f} |", flush=True)


if __name__ == "__main__":
    main()
