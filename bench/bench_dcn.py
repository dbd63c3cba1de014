"""Benchmark: the DCNv2 kernel (plugin/dcnv2Kernel.cu) vs torchvision.ops.deform_conv2d, side by side in one run.

For each CenterNet DCN shape (3x3, stride 1, pad 1) and precision it prints the median time of ours and of
torchvision, their ratio, and the layer's floor = max(FLOPs / measured matrix rate, bytes / measured copy
bandwidth) with the ratio to it. Ceilings are measured here on this card: a large torch.matmul in the same
precision (fp16; fp32 with TF32; strict fp32) and a large device-to-device copy (bytes read + written).
Timing: device time per call, with host launch overhead taken out the same way for both: --calls calls are
captured into one CUDA graph, each replay is timed with CUDA events, median over --reps replays / calls
(warm-up first; inputs resident on the GPU). The eager per-call time (events around one Python call) is
printed too: it is dominated by host overhead (Python, ctypes) on these small layers. --producer puts a kernel that
writes the offsets before every call (ours and torchvision's alike), as in a network, and subtracts its own time: a
check that a change does not only gain from overlapping a layer's own previous call.
torchvision's fp32 runs its GEMM in strict fp32 (torch's default allow_tf32=False); ours "tf32" uses TF32.
Context column "GEMM": cuBLAS (torch.mm, same timing) on the dense product torchvision runs after its im2col,
(Cout x 9C) @ (9C x N*H*W), in the row's precision (TF32 for "tf32"): what a plain GEMM of the layer's size costs here,
next to the issue's target time (torchvision / 5 in fp16, / 3 in fp32).
Column "im2col": the plugin's second TensorRT tactic (im2col + cuBLAS GEMM, DCNv2Algo::kIm2colGemm) where cuBLAS
loads, timed the same way, on NCHW tensors and (in brackets) with the input channels-last (no transpose pass);
TensorRT times both tactics at engine build and keeps the faster, so "best" is the speed-up an engine gets from the
faster of the two on NCHW tensors.
Column "NHWC": ours with channels-last tensors, as in an engine where TensorRT hands the plugin kHWC8 (fp16) / kHWC
(fp32) tensors: the input alone (read in place, no transpose pass) / input and output / input and weight (the
weight's stages copied straight from it, no pack pass) / all three, and in brackets the best speed-up of any
channels-last run, the tactic's included; torchvision's time stays the NCHW one.
"""
from __future__ import annotations

import argparse
import functools
import itertools
import statistics
from pathlib import Path

import torch
from torchvision.ops import deform_conv2d

import dcn_ctypes

# precision name -> (tensor dtype, TF32 allowed): "fp32" is strict fp32
MODES = {"fp16": (torch.float16, True), "tf32": (torch.float32, True), "fp32": (torch.float32, False)}
SHAPES = [(1, 64, 128, 128, 64), (1, 128, 64, 64, 64), (1, 256, 32, 32, 64), (1, 128, 64, 64, 128),
          (1, 256, 32, 32, 128), (1, 512, 16, 16, 256), (1, 256, 32, 32, 256), (8, 64, 128, 128, 64)]


def shapes_arg(text: str) -> list[tuple[int, ...]]:
    """--shapes: "N,C,H,W,COUT" layers separated by ";" (3x3, stride 1, pad 1, as CenterNet's DCN layers)."""
    try:
        shapes = [tuple(int(v) for v in part.split(",")) for part in text.split(";") if part.strip()]
    except ValueError:
        shapes = []
    if not shapes or any(len(s) != 5 or min(s) < 1 for s in shapes):
        raise argparse.ArgumentTypeError(f"{text!r}: want N,C,H,W,COUT[;N,C,H,W,COUT...] with positive integers, "
                                         "e.g. 1,2048,16,16,256")
    return shapes


# the speed-up targets over torchvision.ops.deform_conv2d (fp32 layers: our TF32 rows) and its floor bound
TARGET_SPEEDUP = {"fp16": 5.0, "tf32": 3.0}
FLOOR_BOUND = 3.0


def target_summary(rows) -> list[str]:
    """One line per (precision, offsets) with a target: how many layers reach the speed-up and how many are within
    FLOOR_BOUND x of their floor, from the unrounded times (the table's ratios are rounded: 2.96x reads as 3.0x
    there), naming the layers that fall short with the factor still to go. rows: (shape, mode, offsets, ours us,
    torchvision us, floor us)."""
    groups: dict[tuple[str, str], list] = {}
    for shape, mode, offsets, ours, tv, floor in rows:
        if mode in TARGET_SPEEDUP:
            groups.setdefault((mode, offsets), []).append((shape, ours, tv, floor))
    lines = []
    for (mode, offsets), items in groups.items():
        need = TARGET_SPEEDUP[mode]
        short = [(s, need * ours / tv) for s, ours, tv, _ in items if tv / ours < need]
        near = sum(ours <= FLOOR_BOUND * floor for _, ours, _, floor in items)
        names = "; ".join(f"{','.join(map(str, s[:4]))}->{s[4]} {k:.2f}x to go" for s, k in short)
        lines.append(f"{mode} {offsets}: >= {need:g}x torchvision on {len(items) - len(short)} of {len(items)} layers"
                     f"{f' (short: {names})' if short else ''}; within {FLOOR_BOUND:g}x of the floor on {near} of "
                     f"{len(items)}")
    return lines


def median_us(fn, reps: int, warmup: int = 30) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for s, e in zip(starts, ends):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends)) * 1e3


def capture_graph(fn, calls: int) -> torch.cuda.CUDAGraph:
    """A CUDA graph of `calls` back-to-back calls of fn (warmed up on a side stream first, as capture requires)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    return graph


def graph_us(fn, calls: int, reps: int) -> float:
    """Median device time per call of fn, replaying a CUDA graph of `calls` back-to-back calls."""
    return median_us(capture_graph(fn, calls).replay, reps, warmup=5) / calls


def matmul_rate(dtype, tf32: bool) -> float:
    """Measured dense matrix rate (FLOP/s) on random data."""
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    n = 8192
    a, b = torch.randn(n, n, device="cuda", dtype=dtype), torch.randn(n, n, device="cuda", dtype=dtype)
    t = median_us(lambda: a @ b, reps=20, warmup=5)
    torch.backends.cuda.matmul.allow_tf32 = prev
    return 2 * n ** 3 / (t * 1e-6)


@functools.lru_cache(maxsize=None)  # one timing per shape and precision, whatever the offsets field
def im2col_gemm_us(shape, dtype, tf32: bool, calls: int, reps: int) -> float:
    """Device time of the dense GEMM torchvision's deform_conv2d runs after im2col, (Cout x 9C) @ (9C x N*H*W),
    with cuBLAS in the given precision (random data; no im2col, no bias)."""
    n, c, h, w, cout = shape
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32  # read when cuBLAS picks its kernel, i.e. during capture
    try:
        wmat = torch.randn(cout, 9 * c, device="cuda", dtype=dtype)
        cols = torch.randn(9 * c, n * h * w, device="cuda", dtype=dtype)
        out = torch.empty(cout, n * h * w, device="cuda", dtype=dtype)
        return graph_us(lambda: torch.mm(wmat, cols, out=out), calls, reps)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev


def copy_bw() -> float:
    """Measured device copy bandwidth (bytes read + written per second)."""
    src = torch.randn(256 * 1024 * 1024, device="cuda")  # 1 GiB
    dst = torch.empty_like(src)
    t = median_us(lambda: dst.copy_(src), reps=20, warmup=3)
    return 2 * src.numel() * 4 / (t * 1e-6)


def floors_rates_arg(rate: dict, bw: float) -> str:
    """The measured rates as bench/gpu_floors.cu's --rates wants them: fp16, TF32, fp32 TFLOP/s and copy GB/s."""
    return f"{rate['fp16'] / 1e12:.3f},{rate['tf32'] / 1e12:.3f},{rate['fp32'] / 1e12:.3f},{bw / 1e9:.3f}"


def inputs(shape, dtype, gen, offsets: str):
    """offsets "random": i.i.d. N(0, 2^2) px per pixel and tap (worst case for locality); "smooth": a random
    field of the same amplitude varying over ~8 px, like a trained offset branch produces."""
    n, c, h, w, cout = shape
    x = torch.randn(n, c, h, w, device="cuda", generator=gen)
    if offsets == "random":
        off = torch.randn(n, 18, h, w, device="cuda", generator=gen) * 2.0
    else:
        coarse = torch.randn(n, 18, max(1, h // 8), max(1, w // 8), device="cuda", generator=gen) * 2.0
        off = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    mask = torch.sigmoid(torch.randn(n, 9, h, w, device="cuda", generator=gen))
    weight = torch.randn(cout, c, 3, 3, device="cuda", generator=gen) / (c * 9) ** 0.5
    bias = torch.randn(cout, device="cuda", generator=gen)
    return [t.to(dtype).contiguous() for t in (x, off, mask, weight, bias)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=None)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--sweep", action="store_true", help="also time forced split-K factors (tuning; fp16 and TF32)")
    ap.add_argument("--offsets", default="random,smooth", help="offset fields to time: random, smooth")
    ap.add_argument("--modes", default="fp16,tf32,fp32", help="precisions to time: fp16, tf32, fp32")
    ap.add_argument("--shapes", type=shapes_arg, default=SHAPES,
                    help="layers N,C,H,W,COUT separated by ';' (default: the issue's eight CenterNet DCN layers)")
    ap.add_argument("--variants", default=dcn_ctypes.DEFAULT_VARIANTS,
                    help=dcn_ctypes.VARIANTS_HELP + "; the first is the one in the ratios")
    ap.add_argument("--producer", action="store_true",
                    help="precede every call with the kernel that writes its offsets (a device copy), as in a network, "
                         "where the layer before is another kernel; that kernel's own time is subtracted")
    ap.add_argument("--no-im2col", action="store_true", help="skip the im2col + cuBLAS tactic's column")
    ap.add_argument("--rates-out", default=None,
                    help="also write the measured rates to this file, as bench/gpu_floors.cu's --rates wants them")
    args = ap.parse_args()
    lib = dcn_ctypes.load(args.lib)
    gen = torch.Generator(device="cuda").manual_seed(0)
    card = torch.cuda.get_device_name()
    rate = {"fp16": matmul_rate(torch.float16, False), "tf32": matmul_rate(torch.float32, True),
            "fp32": matmul_rate(torch.float32, False)}
    bw = copy_bw()
    if args.rates_out:
        Path(args.rates_out).write_text(floors_rates_arg(rate, bw) + "\n")
    print(f"card: {card}; measured matmul fp16 {rate['fp16'] / 1e12:.0f} TFLOP/s, tf32 {rate['tf32'] / 1e12:.0f}, "
          f"fp32 {rate['fp32'] / 1e12:.1f}; copy {bw / 1e9:.0f} GB/s")
    torch.backends.cuda.matmul.allow_tf32 = False  # torchvision's fp32 as users get it by default
    rows = []
    variants = [int(v) for v in args.variants.split(",")]
    modes = [(m, *MODES[m]) for m in args.modes.split(",")]
    for shape, (mode, dtype, tf32), offsets in itertools.product(args.shapes, modes, args.offsets.split(",")):
        n, c, h, w, cout = shape
        x, off, mask, weight, bias = inputs(shape, dtype, gen, offsets)
        run_tv = lambda: deform_conv2d(x, off, weight, bias, padding=(1, 1), mask=mask)
        timed, produce_us = graph_us, 0.0
        if args.producer:
            off_src = off.clone()
            produce = lambda: off.copy_(off_src)
            produce_us = graph_us(produce, args.calls, args.reps)
            timed = lambda fn, calls, reps: graph_us(lambda: (produce(), fn()), calls, reps) - produce_us
        times, dcns = {}, {}
        for v in (variants if mode != "fp32" else variants[:1]):  # strict fp32 has one kernel
            lib.centernet_dcnv2_set_variant(v)  # before sizing the workspace: each variant plans its own split-K
            dv = dcns[v] = dcn_ctypes.DCN(lib, (n, c, h, w), cout, dtype=dtype, allow_tf32=tf32)
            out = torch.empty(dv.out_shape, dtype=dtype, device="cuda")
            times[v] = timed(lambda: dv(x, off, mask, weight, bias, out), args.calls, args.reps)
        lib.centernet_dcnv2_set_variant(variants[0])  # the variant is read at each call: the default one from here on
        x_nhwc = x.contiguous(memory_format=torch.channels_last)
        col_us = None  # the tactic on the NCHW input, and on the input channels-last (no transpose pass)
        if not args.no_im2col and lib.centernet_dcnv2_set_algo(1) is None:  # tactic 1, where cuBLAS loads
            try:
                col_us = []
                for nhwc, xin in ((False, x), (True, x_nhwc)):
                    dc = dcn_ctypes.DCN(lib, (n, c, h, w), cout, dtype=dtype, allow_tf32=tf32, input_nhwc=nhwc)
                    out = torch.empty(dc.out_shape, dtype=dtype, device="cuda")
                    col_us.append(timed(lambda: dc(xin, off, mask, weight, bias, out), args.calls, args.reps))
            except ValueError:  # the tactic does not take this layer
                col_us = None
            finally:
                lib.centernet_dcnv2_set_algo(0)
        w_nhwc = weight.contiguous(memory_format=torch.channels_last)
        nhwc_us = []
        for out_nhwc, wt_nhwc in ((False, False), (True, False), (False, True), (True, True)):
            dn = dcn_ctypes.DCN(lib, (n, c, h, w), cout, dtype=dtype, allow_tf32=tf32, input_nhwc=True,
                                output_nhwc=out_nhwc, weight_nhwc=wt_nhwc)
            out = torch.empty(dn.out_shape, dtype=dtype, device="cuda",
                              memory_format=torch.channels_last if out_nhwc else torch.contiguous_format)
            wt = w_nhwc if wt_nhwc else weight
            nhwc_us.append(timed(lambda: dn(x_nhwc, off, mask, wt, bias, out), args.calls, args.reps))
        out = torch.empty(dcns[variants[0]].out_shape, dtype=dtype, device="cuda")
        dcn = dcns[variants[0]]
        run_ours = lambda: dcn(x, off, mask, weight, bias, out)
        ours = times[variants[0]]
        tv = timed(run_tv, args.calls, args.reps)
        gemm = im2col_gemm_us(shape, dtype, tf32, args.calls, args.reps)
        target = tv / TARGET_SPEEDUP["fp16" if mode == "fp16" else "tf32"]  # (strict fp32: the fp32 target too)
        others = " ".join(f"v{v} {t:.1f}" for v, t in times.items() if v != variants[0])
        eager = f"eager ours {median_us(run_ours, 100):.1f} tv {median_us(run_tv, 100):.1f}"
        flops = 2.0 * n * h * w * cout * c * 9
        esz = x.element_size()
        nbytes = esz * (x.numel() + off.numel() + mask.numel() + weight.numel() + bias.numel() + out.numel())
        floor = max(flops / rate[mode], nbytes / bw) * 1e6
        sweep = ""
        if args.sweep and mode != "fp32":  # strict fp32 has one kernel
            parts = []
            for s in (1, 2, 3, 4, 6, 8, 9, 12, 16, 24):
                lib.centernet_dcnv2_set_splits(s)  # before sizing the workspace: it must hold s partials
                forced = dcn_ctypes.DCN(lib, (n, c, h, w), cout, dtype=dtype, allow_tf32=tf32)
                parts.append(f"{s}:{timed(lambda: forced(x, off, mask, weight, bias, out), args.calls, 20):.1f}")
            lib.centernet_dcnv2_set_splits(0)
            lib.centernet_dcnv2_set_pdl(0)  # PDL is on by default: time the heuristic without it, then restore
            parts.append(f"noPDL:{timed(run_ours, args.calls, 20):.1f}")
            lib.centernet_dcnv2_set_pdl(1)
            sweep = " splits " + " ".join(parts)
        rows.append((shape, mode, offsets, ours, tv, floor, others, gemm, target, col_us, nhwc_us))
        producer = f" (after an offset-producing kernel of {produce_us:.1f} us, subtracted)" if args.producer else ""
        layouts = " ".join(f"{name} {t:.1f} us (x{tv / t:.1f})"
                           for name, t in zip(("NHWC in", "in+out", "in+weight", "all"), nhwc_us))
        print(f"{n},{c},{h},{w}->{cout} {mode} {offsets}: ours {ours:.1f} us ({others or '-'}), torchvision {tv:.1f} us, "
              f"x{tv / ours:.1f}, {layouts}, im2col tactic "
              f"{'-' if col_us is None else f'{col_us[0]:.1f} us, NHWC in {col_us[1]:.1f} us'}, "
              f"floor {floor:.1f} us, "
              f"/floor {ours / floor:.1f}, im2col GEMM alone {gemm:.1f} us, "
              f"target {target:.1f} us; {eager};{sweep}{producer} [{dcn.plan}]", flush=True)
    print(f"\nDCNv2 forward, median us, card: {card} (CUDA-graph replay; torchvision fp32 = strict fp32 GEMM; ours tf32 = "
          f"operands rounded to 11 significant bits, fp32 sums: TF32 MMA, or fp16 MMA on scaled operands where the plan "
          f"says 'fp16 MMA'"
          f"{'; each call after an offset-producing kernel, its time subtracted' if args.producer else ''})")
    print("| N,C,H,W -> Cout | prec | offsets | ours | other variants | torchvision | speed-up | im2col (NHWC in) "
          "| best | floor | ours/floor | GEMM | target | NHWC in / in+out / in+weight / all (best x) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for shape, mode, offsets, ours, tv, floor, others, gemm, target, col_us, nhwc_us in rows:
        n, c, h, w, cout = shape
        tvname = "fp16" if mode == "fp16" else "fp32"
        col, best = (("-", tv / ours) if col_us is None
                     else (f"{col_us[0]:.1f} ({col_us[1]:.1f})", tv / min(ours, col_us[0])))
        print(f"| {n},{c},{h},{w} -> {cout} | {mode} (tv {tvname}) | {offsets} | {ours:.1f} | {others or '-'} | "
              f"{tv:.1f} | {tv / ours:.2f}x | {col} | {best:.1f}x | {floor:.1f} | {ours / floor:.1f} | {gemm:.1f} | "
              f"{target:.1f} | {' / '.join(f'{t:.1f}' for t in nhwc_us)} "
              f"({tv / min(nhwc_us + ([] if col_us is None else col_us[1:])):.1f}x) |")
    print("\nThe issue's targets (ours on NCHW tensors against torchvision, unrounded times):")
    for line in target_summary([r[:6] for r in rows]):
        print(f"  {line}")


if __name__ == "__main__":
    main()
