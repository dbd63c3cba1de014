"""Side by side: several builds of the DCNv2 kernel library timed in one run (docs/kernel.md's version tables).

Each --lib NAME=PATH (a shared library with bench/dcn_ctypes.py's C ABI, e.g. built by bench/gpu_run.sh or by
`nvcc -shared ... plugin/dcnv2Kernel.cu` from an older commit) is loaded into the same process. For each layer and
precision every build runs on the same inputs, --rounds times in alternating order (the builds forward, then
backward, so that neither the first nor the last place favours one), each time the median device time per call of
CUDA-graph replays (bench_dcn.graph_us); the table prints the median over the rounds, its ratio to the first build,
whether each output equals the first build's bit for bit, and each build's relative L2 error against torchvision's
deform_conv2d in float64 on the same (already rounded) inputs. The first --lib is the reference.

  python3 bench/ab_dcn.py --lib v30=/tmp/v30/lib.so --lib v31=build/dcn_kernel/libdcnv2_kernel.so \\
      --modes tf32 --shapes "1,64,128,128,64;1,128,64,64,64"
"""
from __future__ import annotations

import argparse
import functools
import statistics
import sys
from pathlib import Path

import torch
from torchvision.ops import deform_conv2d

import dcn_ctypes
from bench_dcn import MODES, SHAPES, graph_us, inputs, shapes_arg


def lib_arg(text: str) -> tuple[str, Path]:
    """--lib: NAME=PATH of one build."""
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: want NAME=PATH, e.g. v31=build/dcn_kernel/libdcnv2_kernel.so")
    return name.strip(), Path(path.strip())


def modes_arg(text: str) -> list[str]:
    """--modes: comma-separated fp16, tf32, fp32 (strict)."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        raise argparse.ArgumentTypeError(f"{text!r}: want a comma-separated subset of {', '.join(MODES)}")
    return modes


def add_timing_args(ap: argparse.ArgumentParser, rounds: int) -> None:
    """The layer, precision and timing options of the side-by-side scripts (this one, bench/bounds_dcn.py)."""
    ap.add_argument("--shapes", type=shapes_arg, default=SHAPES, help='"N,C,H,W,COUT;..." (default: the issue\'s 8)')
    ap.add_argument("--modes", type=modes_arg, default=["tf32", "fp16"], help="fp16, tf32, fp32 (default tf32,fp16)")
    ap.add_argument("--offsets", choices=["random", "smooth"], default="random")
    ap.add_argument("--rounds", type=int, default=rounds, help=f"rounds in alternating order (default {rounds})")
    ap.add_argument("--calls", type=int, default=20, help="calls per CUDA graph (default 20)")
    ap.add_argument("--reps", type=int, default=30, help="graph replays per timing (default 30)")


def check_timing_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.rounds < 1 or args.calls < 1 or args.reps < 1:
        ap.error("--rounds, --calls and --reps must be at least 1")


def add_lib_args(ap: argparse.ArgumentParser) -> None:
    """--lib NAME=PATH, repeated: the builds of the side-by-side scripts (this one, bench/host_dcn.py)."""
    ap.add_argument("--lib", type=lib_arg, action="append", required=True, metavar="NAME=PATH",
                    help="a build to time (repeat; the first is the reference)")


def check_lib_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    names = [name for name, _ in args.lib]
    if len(set(names)) != len(names):
        ap.error(f"--lib names must differ: {', '.join(names)}")
    missing = [str(path) for _, path in args.lib if not path.is_file()]
    if missing:
        ap.error(f"no such library: {', '.join(missing)} (build one with bash bench/gpu_run.sh, or nvcc -shared as in "
                 "bench/dcn_ctypes.py)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_lib_args(ap)
    add_timing_args(ap, rounds=6)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    check_lib_args(ap, args)
    check_timing_args(ap, args)
    return args


def alternating_medians(measures: dict, rounds: int) -> dict[str, float]:
    """Median over rounds of each measurement (name -> a call returning one time), taken in alternating order
    (forward, then backward) so that neither the first nor the last place favours one."""
    names = list(measures)
    times = {k: [] for k in names}
    for r in range(rounds):
        for k in names if r % 2 == 0 else names[::-1]:
            times[k].append(measures[k]())
    return {k: statistics.median(v) for k, v in times.items()}


def median_side_by_side(fns: dict, rounds: int, calls: int, reps: int) -> dict[str, float]:
    """Median over rounds of each function's device time per call (CUDA-graph replays, bench_dcn.graph_us), the
    functions timed in alternating order."""
    return alternating_medians({k: functools.partial(graph_us, f, calls, reps) for k, f in fns.items()}, rounds)


def layer_runs(libs: dict, args: argparse.Namespace, gen: torch.Generator):
    """For each layer (args.shapes) and precision (args.modes): the shape, the precision's name and dtype, fresh
    inputs (bench_dcn.inputs) and a configured call of each library (name -> dcn_ctypes.DCN)."""
    for shape in args.shapes:
        n, c, h, w, cout = shape
        for mode in args.modes:
            dtype, tf32 = MODES[mode]
            ins = inputs(shape, dtype, gen, args.offsets)
            yield shape, mode, dtype, ins, {k: dcn_ctypes.DCN(lib, (n, c, h, w), cout, dtype=dtype, allow_tf32=tf32)
                                            for k, lib in libs.items()}


def rel_l2(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.double() - ref).norm() / ref.norm())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("error: no CUDA device: this script times kernels on the GPU", file=sys.stderr)
        return 2
    libs = {name: dcn_ctypes.load(path) for name, path in args.lib}
    names = list(libs)
    gen = torch.Generator(device="cuda").manual_seed(args.seed)
    card = torch.cuda.get_device_name()
    print(f"card: {card}; builds: " + ", ".join(f"{n} = {p}" for n, p in args.lib) + f"; {args.rounds} rounds, "
          f"{args.offsets} offsets, CUDA-graph timing, us (median over rounds)")
    head = " | ".join(names[:1] + [f"{n} (x {names[0]})" for n in names[1:]])
    print(f"| N,C,H,W -> Cout | prec | plan ({names[0]}) | {head} | bitwise {names[0]} | rel. error vs float64 |")
    print("|---|---|---|" + "---|" * len(names) + "---|---|")
    for (n, c, h, w, cout), mode, dtype, (x, off, mask, weight, bias), dcns in layer_runs(libs, args, gen):
        outs = {k: torch.full(d.out_shape, float("nan"), device="cuda", dtype=dtype) for k, d in dcns.items()}
        med = median_side_by_side({k: functools.partial(dcns[k], x, off, mask, weight, bias, outs[k])
                                   for k in names}, args.rounds, args.calls, args.reps)
        ref = deform_conv2d(x.double(), off.double(), weight.double(), bias.double(), padding=(1, 1),
                            mask=mask.double())
        cells = [f"{med[names[0]]:.2f}"] + [f"{med[k]:.2f} ({med[k] / med[names[0]]:.3f})" for k in names[1:]]
        same = " ".join(f"{k}: {'yes' if torch.equal(outs[names[0]], outs[k]) else 'no'}" for k in names[1:])
        errs = " ".join(f"{k} {rel_l2(outs[k], ref):.2e}" for k in names)
        print(f"| {n},{c},{h},{w} -> {cout} | {mode} | {dcns[names[0]].plan} | {' | '.join(cells)} | "
              f"{same or '-'} | {errs} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
