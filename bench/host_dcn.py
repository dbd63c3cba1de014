"""Host time per call of the DCNv2 kernel library, side by side for several builds (docs/kernel.md, "Host time per call").

Where a network runs without CUDA graphs, TensorRT's enqueue is host-bound for small layers: what the plugin's
enqueue spends on the CPU adds to every inference. For each layer and precision and each --lib NAME=PATH this prints,
in us per call (median of --rounds batches, the builds in alternating order):
  plan: the workspace-size query (the host-only launch plan the enqueue also computes; TensorRT asks it at build time);
  enqueue: a whole forward call without waiting for the GPU (plan, argument set-up, the kernel launches), the C ABI
    called with its arguments made once, from batches of --calls calls short enough that the launch queue never
    fills, so the GPU's time is not in it;
  as planned: the same forward told that the workspace is as large as the workspace-size query says
    (kDCNv2WorkspaceAsPlanned, the plugin's enqueue since it), so that it makes one plan, not two ("-": a build
    before it; the plugin's enqueue before it made the size query and the forward: plan + enqueue);
and a ctypes call that does nothing (the binding's own share: more for the enqueue's 32 arguments than for its one).

  python3 bench/host_dcn.py --lib old=/tmp/old/lib.so --lib new=build/dcn_kernel/libdcnv2_kernel.so
"""
from __future__ import annotations

import argparse
import functools
import sys
import time

import torch

import dcn_ctypes
from ab_dcn import add_lib_args, alternating_medians, check_lib_args, modes_arg
from bench_dcn import MODES, SHAPES, inputs, shapes_arg


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_lib_args(ap)
    ap.add_argument("--shapes", type=shapes_arg, default=SHAPES, help='"N,C,H,W,COUT;..." (default: the issue\'s 8)')
    ap.add_argument("--modes", type=modes_arg, default=["tf32", "fp16"], help="fp16, tf32, fp32 (default tf32,fp16)")
    ap.add_argument("--rounds", type=int, default=5, help="batches per measurement (default 5)")
    ap.add_argument("--calls", type=int, default=50, help="enqueues per batch (default 50)")
    args = ap.parse_args(argv)
    check_lib_args(ap, args)
    if args.rounds < 1 or args.calls < 1:
        ap.error("--rounds and --calls must be at least 1")
    return args


def batch_us(fn, calls: int, sync: bool) -> float:
    """us per call of one batch of `calls` calls (the GPU drained before; not waited for inside the batch)."""
    if sync:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    us = (time.perf_counter() - t) / calls * 1e6
    if sync:
        torch.cuda.synchronize()
    return us


def side_by_side(fns: dict, rounds: int, calls: int, sync: bool) -> dict[str, float]:
    """Median over rounds of each function's batch_us, in alternating order (ab_dcn.alternating_medians)."""
    return alternating_medians({k: functools.partial(batch_us, f, calls, sync) for k, f in fns.items()}, rounds)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("error: no CUDA device: the plan asks the GPU's properties and the enqueue launches on it",
              file=sys.stderr)
        return 2
    libs = {name: dcn_ctypes.load(path) for name, path in args.lib}
    names = list(libs)
    gen = torch.Generator(device="cuda").manual_seed(0)
    first = libs[names[0]]
    noop = side_by_side({"noop": lambda: first.centernet_dcnv2_set_pdl(1)}, args.rounds, 2000, False)["noop"]
    print(f"card: {torch.cuda.get_device_name()}; builds: " + ", ".join(f"{n} = {p}" for n, p in args.lib) +
          f"; us per call, median of {args.rounds} batches; a ctypes call doing nothing: {noop:.2f} us")
    print("| N,C,H,W -> Cout | prec | " + " | ".join(f"{k} plan | {k} enqueue | {k} as planned" for k in names) + " |")
    print("|---|---|" + "---|---|---|" * len(names))
    for shape in args.shapes:
        n, c, h, w, cout = shape
        for mode in args.modes:
            dtype, tf32 = MODES[mode]
            x, off, mask, weight, bias = inputs(shape, dtype, gen, "random")
            dcns = {k: dcn_ctypes.DCN(lib, (n, c, h, w), cout, dtype=dtype, allow_tf32=tf32) for k, lib in libs.items()}
            outs = {k: torch.empty(d.out_shape, device="cuda", dtype=dtype) for k, d in dcns.items()}
            for k in names:  # warm-up: first launches load modules and set kernel attributes
                dcns[k](x, off, mask, weight, bias, outs[k])
            plan = side_by_side({k: (lambda d=dcns[k]: d.lib.centernet_dcnv2_workspace_size(*d.ints)) for k in names},
                                args.rounds, 2000, False)
            stream = torch.cuda.current_stream().cuda_stream

            def forward(d, out, ws_bytes):
                return functools.partial(d.lib.centernet_dcnv2_forward, *d.ints, x.data_ptr(), off.data_ptr(),
                                         mask.data_ptr(), weight.data_ptr(), bias.data_ptr(), out.data_ptr(),
                                         d.ws.data_ptr(), ws_bytes, stream)
            calls = {k: forward(d, outs[k], d.ws_bytes) for k, d in dcns.items()}
            calls.update({f"{k} as planned": forward(d, outs[k], d.lib.centernet_dcnv2_workspace_as_planned())
                          for k, d in dcns.items() if hasattr(d.lib, "centernet_dcnv2_workspace_as_planned")})
            for k, call in calls.items():
                if call() != 0:
                    raise RuntimeError(f"{k}: centernet_dcnv2_forward failed")
            enq = side_by_side(calls, args.rounds, args.calls, True)
            cells = " | ".join(f"{plan[k]:.1f} | {enq[k]:.1f} | " +
                               (f"{enq[k + ' as planned']:.1f}" if k + " as planned" in enq else "-") for k in names)
            print(f"| {n},{c},{h},{w} -> {cout} | {mode} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
