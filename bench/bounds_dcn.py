"""What holds a DCNv2 call back: the kernel next to two timing-only builds of it and torchvision, in one run
(docs/kernel.md, "v33 experiment").

Three builds of plugin/dcnv2Kernel.cu (bench/kernel_variants.py, into build/dcn_bounds/, for sm_90a): the kernel as
it is; "no split-K sum": the finalize pass that sums the split-K partials is not launched, as if that sum were free;
"no prep pass": the prep kernel (the NCHW -> NHWC copy, the weight pack, the zeroing of an output that two K splits
add into) runs in one call of every --calls and the main kernel then in plain stream order, as if its inputs were
ready, with no dependent launch behind them. The last two compute wrong outputs: they bound what a cheaper split-K sum
or prep pass could gain, and are never the benchmark's numbers. For each layer and precision, torchvision's
deform_conv2d (strict fp32 for the TF32 rows, as bench/bench_dcn.py times it) and the three builds run on the same
inputs, --rounds times in alternating order (bench/ab_dcn.py), each the median device time per call of CUDA-graph
replays; the table prints the median over the rounds and the speed-up over torchvision.

The builds are reused where made before from the same kernel, defines and nvcc (bench/kernel_variants.py), so they
can be compiled on a machine without a GPU (--build-only) and carried to one with build/dcn_bounds/.

Usage (repo root, a GPU with compute capability 9.0): python3 bench/bounds_dcn.py [--modes tf32,fp16] [--shapes ...]
"""
from __future__ import annotations

import argparse
import functools
import sys
from concurrent.futures import ThreadPoolExecutor

import torch
from torchvision.ops import deform_conv2d

import dcn_ctypes
import kernel_variants
from ab_dcn import add_timing_args, check_timing_args, layer_runs, median_side_by_side

OUT_DIR = kernel_variants.ROOT / "build" / "dcn_bounds"

# The finalize pass is not launched: the main kernel's partials stay in the workspace.
NO_SUM = """-  if (endsWithFinalize(g)) {
+  if (false && endsWithFinalize(g)) {  // bounds_dcn: no split-K sum
    int const vec4 ="""
# The prep kernel in one call of every CENTERNET_DCN_PREP_PERIOD (--calls: one per captured graph); the calls without
# it launch the main kernel in plain stream order.
NO_PREP = """-  cudaError_t e = launchPrep(pa, regTrans, krsc, stream, prepCarveout);
+  static long calls = 0;  // bounds_dcn: the prep kernel in one call of every CENTERNET_DCN_PREP_PERIOD
+  bool const prepNow = calls++ % CENTERNET_DCN_PREP_PERIOD == 0;
+  cudaError_t e = prepNow ? launchPrep(pa, regTrans, krsc, stream, prepCarveout) : cudaSuccess;
  if (e != cudaSuccess) return e;
  // no prep kernel (input and weight channels-last, no output to zero): the main kernel is the call's first,
  // launched in plain stream order (its sampling table reads the offsets and masks before gridDependencyWait)
-  bool const afterPrep = pa.transBlocks + pa.packBlocks + pa.zeroBlocks > 0;
+  bool const afterPrep = prepNow && pa.transBlocks + pa.packBlocks + pa.zeroBlocks > 0;"""
OWNER = "bench/bounds_dcn.py NO_SUM / NO_PREP"
# build name -> (column title, patches)
BUILDS = {"kernel": ("ours", []), "no_sum": ("no split-K sum", [NO_SUM]), "no_prep": ("no prep pass", [NO_PREP])}


def sources(kernel: str) -> dict[str, str]:
    """Each build's kernel source; a clear error where the kernel no longer has a patch's anchor."""
    return {name: kernel_variants.apply(kernel, [kernel_variants.anchor_and_replacement(p) for p in patches], OWNER)
            for name, (_, patches) in BUILDS.items()}


def build_all(calls: int) -> dict:
    """The three libraries, compiled side by side."""
    srcs = sources(kernel_variants.KERNEL.read_text())
    defines = (f"CENTERNET_DCN_PREP_PERIOD={calls}",)
    with ThreadPoolExecutor(len(srcs)) as pool:
        jobs = {name: pool.submit(kernel_variants.build, src, OUT_DIR, f"libdcnv2_{name}.so", defines)
                for name, src in srcs.items()}
        return {name: job.result() for name, job in jobs.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_args(ap, rounds=4)
    ap.add_argument("--build-only", action="store_true",
                    help="compile the three builds and stop (no GPU needed; a later run with the same --calls reuses them)")
    args = ap.parse_args(argv)
    check_timing_args(ap, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.build_only:
        for path in build_all(args.calls).values():
            print(path)
        return 0
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("error: needs a GPU of compute capability 9.0 (the sm_90a kernel the builds are for)", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False  # torchvision's fp32 as users get it by default
    libs = {name: dcn_ctypes.load(path) for name, path in build_all(args.calls).items()}
    gen = torch.Generator(device="cuda").manual_seed(0)
    print(f"card: {torch.cuda.get_device_name()}; {args.rounds} rounds, {args.offsets} offsets, CUDA-graph timing, "
          "us (median over rounds) and speed-up over torchvision; the last two columns are timing-only builds")
    titles = " | ".join(title for title, _ in BUILDS.values())
    print(f"| N,C,H,W -> Cout | prec | plan | torchvision | {titles} |")
    print("|---|---|---|---|" + "---|" * len(BUILDS))
    for (n, c, h, w, cout), mode, dtype, (x, off, mask, weight, bias), dcns in layer_runs(libs, args, gen):
        outs = {k: torch.empty(d.out_shape, device="cuda", dtype=dtype) for k, d in dcns.items()}
        fns = {k: functools.partial(dcns[k], x, off, mask, weight, bias, outs[k]) for k in dcns}
        fns["torchvision"] = functools.partial(deform_conv2d, x, off, weight, bias, padding=(1, 1), mask=mask)
        med = median_side_by_side(fns, args.rounds, args.calls, args.reps)
        tv = med["torchvision"]
        cells = " | ".join(f"{med[k]:.2f} ({tv / med[k]:.2f}x)" for k in BUILDS)
        print(f"| {n},{c},{h},{w} -> {cout} | {mode} | {dcns['kernel'].plan} | {tv:.2f} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
