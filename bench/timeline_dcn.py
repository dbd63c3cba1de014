"""Timeline of one DCNv2 call, per kernel and per phase of the warpgroup kernel's blocks (docs/kernel.md, "v17").

A timing-only copy of plugin/dcnv2Kernel.cu is instrumented (thread 0 of every block of the prep, warpgroup and
finalize kernels stores %globaltimer and clock64 at fixed points), built into build/dcn_timeline/ with nvcc, and each
benchmark layer's call is replayed from a CUDA graph 30 times; the median replay is printed: when the prep kernel
ends, when the main blocks start, the block-median phases of the main kernel (sampling table, wait for the prep
kernel, barrier, K loop, epilogue; from clock64 at the blocks' median cycles per ns), when it ends, and of the
finalize kernel when its first block starts, when the first is past its wait for the main grid, when its median block
has summed its partials, and when the call ends (us from the prep kernel's first block). Needs a GPU with the sm_90a
warpgroup kernel (compute capability 9.0). The instrumented build is slower than the real one by a few stores per
block and is never used for the benchmark's numbers.
--blocks prints, instead, the spread over the blocks of the median replay (percentiles 0 / 10 / 50 / 90 / 100, us
from the call's first block): when the prep blocks end, when the main blocks start, end their sampling table and
their K loop, and end, with the table's and K loop's durations (docs/kernel.md, "v29"), for the layouts in --layouts
(nchw; in: the input channels-last; in+w: input and weight channels-last, which needs no prep kernel).
The build is reused where made before from the same kernel and nvcc (bench/kernel_variants.py): --build-only makes it
on a machine without a GPU, to be carried to one with build/dcn_timeline/.
Usage (repo root): python3 bench/timeline_dcn.py [--reps 30] [--blocks [--layouts nchw,in,in+w] [--modes tf32]]
"""
from __future__ import annotations

import argparse
import ctypes
from pathlib import Path

import kernel_variants

ROOT = Path(__file__).resolve().parents[1]
KERNEL = kernel_variants.KERNEL
OUT_DIR = ROOT / "build" / "dcn_timeline"
STAMP_BLOCKS = 8192  # blocks per kernel that get stamps (kStampBlocks below)

# kernel_variants patches: the lines marked "+" are inserted at their anchors
PATCHES = [
    """+constexpr int kStampBlocks = 8192;
+__device__ unsigned long long gStamp[2][3][kStampBlocks][6];  // [globaltimer, clock64][prep, main, finalize][block][phase]
+__device__ __forceinline__ unsigned long long gtime() {
+  unsigned long long t;
+  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
+  return t;
+}
+__device__ __forceinline__ void stamp(int kern, int k) {
+  unsigned const b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
+  if (threadIdx.x == 0 && b < kStampBlocks) {
+    gStamp[0][kern][b][k] = gtime();
+    gStamp[1][kern][b][k] = clock64();
+  }
+}
+struct StampEnd {
+  int kern;
+  __device__ ~StampEnd() { stamp(kern, 5); }
+};
__device__ __forceinline__ void gridDependencyWait() {""",
    """+  stamp(0, 0);
+  StampEnd se{0};
  gridDependentsMayLaunch();  // the main kernel may start building its sampling tables now
  int b = blockIdx.x;""",
    """+  stamp(1, 0);
+  StampEnd se{1};
  BlockTile const bt = blockTile(g);
  int const img = bt.img, ho0 = bt.ho0, wo0 = bt.wo0, grp = bt.grp, nb = bt.nb, cb = bt.cb, ce = bt.ce;
  if (cb >= ce) {
    gridDependencyWait();
    return;
  }
  constexpr bool kHalf = std::is_same<T, __half>::value;
  uint32_t const bars = sBars + set * kStagesB * 8;  // this warpgroup's B-stage barriers
  bool const bIssuer = NS ? tid == 0 : lt == 0;  // who initializes the barriers and issues the bulk copies
  if (kBulkB && bIssuer) {
#pragma unroll
    for (int s = 0; s < kStagesB; ++s) mbarInit(bars + s * 8);
    asm volatile("fence.mbarrier_init.release.cluster;\\n" ::: "memory");
  }
  constexpr TableWeights kTableW = kHalf ? kWeightsF16 : H16 ? kWeightsF16Scaled : kWeightsF32;
  float smax = 0.f;   // HMMA: the largest record scale this thread built
  bool own = false;   // HMMA: ... and whether it stored a record at its own scale, not at 1 (v61)
  buildSampleTable<T, true, THREADS, kTableW>(a, info, img, ho0, wo0, tid, cb, ce, HMMA ? &smax : nullptr,
      HMMA ? &own : nullptr);
+  stamp(1, 1);
  float* const hmmaMax = reinterpret_cast<float*>(reinterpret_cast<float4*>(info) +
""",
    """  gridDependencyWait();  // from here on we read what the prep kernel wrote
+  stamp(1, 2);
  __syncthreads();
+  stamp(1, 3);
  float blockScale = 1.f;  // HMMA: the largest record scale of the block (a power of two)""",
    """  wgWait<0>();
+  stamp(1, 4);
  fenceAcc(acc);""",
    """    int total, int Cout, int HoWo, int splits, int vec4, int nhwc) {
  using Tr = Traits<T>;
+  stamp(2, 0);
+  StampEnd se{2};
  gridDependencyWait();
+  stamp(2, 1);""",
    """      float b[4] = {0.f, 0.f, 0.f, 0.f};
+      stamp(2, 2);
      if (bias) {""",
    """+int centernet_dcnv2_stamps(void* host, size_t bytes, int clear) {
+  cudaError_t e = cudaMemcpyFromSymbol(host, centernet_trt::gStamp, bytes);
+  if (e == cudaSuccess && clear) {
+    static unsigned long long zeros[2 * 3 * centernet_trt::kStampBlocks * 6];
+    e = cudaMemcpyToSymbol(centernet_trt::gStamp, zeros, sizeof(zeros));
+  }
+  return int(e);
+}
+
char const* centernet_dcnv2_set_algo(int algo) {""",
]


# (anchor in the kernel file, what replaces it)
INSTRUMENTATION = [kernel_variants.anchor_and_replacement(p) for p in PATCHES]


def instrument(source: str) -> str:
    """The kernel source with the stamps; a clear error where the kernel no longer has an anchor."""
    return kernel_variants.apply(source, INSTRUMENTATION, "bench/timeline_dcn.py INSTRUMENTATION")


def build() -> Path:
    return kernel_variants.build(instrument(KERNEL.read_text()), OUT_DIR, "libdcnv2_timeline.so")


LAYOUTS = {"nchw": (False, False), "in": (True, False), "in+w": (True, True)}  # (input, weight) channels-last
PERCENTILES = (0, 10, 50, 90, 100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30, help="graph replays per layer; the median replay is printed")
    ap.add_argument("--blocks", action="store_true",
                    help="percentiles over the blocks of each phase instead of block medians")
    ap.add_argument("--layouts", default="nchw", help="with --blocks: comma-separated " + ", ".join(LAYOUTS))
    ap.add_argument("--modes", default="fp16,tf32", help="comma-separated fp16, tf32")
    ap.add_argument("--build-only", action="store_true",
                    help="compile the instrumented build and stop (no GPU needed; a later run reuses it)")
    args = ap.parse_args()
    layouts = args.layouts.split(",")
    modes = args.modes.split(",")
    for name in layouts:
        if name not in LAYOUTS:
            raise SystemExit(f"error: --layouts: unknown layout {name!r}; use {', '.join(LAYOUTS)}")
    if not args.blocks and layouts != ["nchw"]:
        raise SystemExit("error: --layouts needs --blocks (the medians table is for NCHW tensors)")
    for mode in modes:
        if mode not in ("fp16", "tf32"):
            raise SystemExit(f"error: --modes: unknown mode {mode!r}; use fp16, tf32")
    if args.build_only:
        print(build())
        return
    import numpy as np
    import torch

    import bench_dcn
    import dcn_ctypes

    lib = dcn_ctypes.load(build())
    lib.centernet_dcnv2_stamps.restype = ctypes.c_int
    lib.centernet_dcnv2_stamps.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    buf = np.zeros((2, 3, STAMP_BLOCKS, 6), dtype=np.uint64)  # [globaltimer, clock64][prep, main, finalize][block][k]
    gen = torch.Generator(device="cuda").manual_seed(0)

    def replays(graph, plan):
        """Per replay: the globaltimer and clock64 stamps of the blocks that ran, [prep, main, finalize]."""
        out = []
        for _ in range(args.reps):
            torch.cuda.synchronize()
            if lib.centernet_dcnv2_stamps(buf.ctypes.data, buf.nbytes, 1) != 0:
                raise SystemExit("error: reading the stamps failed")
            graph.replay()
            torch.cuda.synchronize()
            lib.centernet_dcnv2_stamps(buf.ctypes.data, buf.nbytes, 0)
            gt, ck = buf[0].astype(np.int64), buf[1].astype(np.int64)
            ran = [gt[k][:, 0] > 0 for k in range(3)]
            if not ran[1].any():
                raise SystemExit(f"error: {plan}: no warpgroup-kernel stamps (needs compute capability 9.0)")
            out.append(([gt[k][ran[k]] for k in range(3)], ck[1][ran[1]]))
        return out

    if args.blocks:
        print(f"card: {torch.cuda.get_device_name()}; the median replay; percentiles {' / '.join(map(str, PERCENTILES))} "
              "over its blocks, us from the call's first block")
        print("| layer | prec | layout | plan | call | prep blocks end | main blocks start | table ends | K loop ends | "
              "blocks end | table (duration) | K loop (duration) | finalize ends |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    else:
        print(f"card: {torch.cuda.get_device_name()}; us from the prep kernel's first block; main phases are block "
              "medians")
        print("| layer | prec | plan | call | prep ends | main: first / median start | table | wait | barrier | K loop | "
              "epilogue | main ends | finalize: first block starts / first past its wait / median block summed / call "
              "ends |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for shape in bench_dcn.SHAPES:
        for mode in modes:
            dtype = torch.float16 if mode == "fp16" else torch.float32
            n, c, h, w, cout = shape
            x, off, mask, weight, bias = bench_dcn.inputs(shape, dtype, gen, "random")
            for layout in layouts:
                in_cl, w_cl = LAYOUTS[layout]
                xi = x.contiguous(memory_format=torch.channels_last) if in_cl else x
                wi = weight.contiguous(memory_format=torch.channels_last) if w_cl else weight
                dcn = dcn_ctypes.DCN(lib, (n, c, h, w), cout, dtype=dtype, allow_tf32=True, input_nhwc=in_cl,
                                     weight_nhwc=w_cl)
                out = torch.empty(dcn.out_shape, dtype=dtype, device="cuda")
                graph = bench_dcn.capture_graph(lambda: dcn(xi, off, mask, wi, bias, out), 1)
                stamps = replays(graph, dcn.plan)
                if args.blocks:
                    print_blocks(np, stamps, f"| {n},{c},{h},{w} -> {cout} | {mode} | {layout} | {dcn.plan} |")
                else:
                    print_medians(np, stamps, f"| {n},{c},{h},{w} -> {cout} | {mode} | {dcn.plan} |")


def median_replay(stamps):
    """The replay whose call (first block of any kernel to the last block's end) is the median, its length in us and
    its first block's globaltimer; both tables read this one replay."""
    def span(replay):
        (prep, main_, fin), _ = replay
        t0 = min(k[:, 0].min() for k in (prep, main_) if len(k))
        return ((fin if len(fin) else main_)[:, 5].max() - t0) / 1e3, t0
    replay = sorted(stamps, key=lambda r: span(r)[0])[len(stamps) // 2]
    return (replay, *span(replay))


def print_medians(np, stamps, head: str) -> None:
    """The block medians of the median replay (the default table)."""
    ((prep, main_, fin), clk), call, t0 = median_replay(stamps)
    us = lambda v: (v - t0) / 1e3
    per_ns = np.median((clk[:, 5] - clk[:, 0]) / np.maximum(main_[:, 5] - main_[:, 0], 1))
    phases = [np.median(clk[:, k + 1] - clk[:, k]) / per_ns / 1e3 for k in range(5)]
    fin_text = "-"
    if len(fin):
        # finalize stamps: 1 past griddepcontrol.wait (the main grid complete, its writes visible), 2 its partials
        # summed (the 16-byte path; a block with no element to sum leaves it 0)
        summed = fin[:, 2][fin[:, 2] > 0]
        summed_text = f"{us(np.median(summed)):.1f}" if len(summed) else "-"
        fin_text = f"{us(fin[:, 0].min()):.1f} / {us(fin[:, 1].min()):.1f} / {summed_text} / {call:.1f}"
    print(f"{head} {call:.1f} | {us(prep[:, 5].max()):.1f} | {us(main_[:, 0].min()):.1f} / "
          f"{us(np.median(main_[:, 0])):.1f} | " + " | ".join(f"{p:.2f}" for p in phases) +
          f" | {us(main_[:, 5].max()):.1f} | {fin_text} |", flush=True)


def print_blocks(np, stamps, head: str) -> None:
    """Percentiles over the blocks of the median replay (globaltimer, us from the call's first block)."""
    ((prep, main_, fin), _), call, t0 = median_replay(stamps)
    pct = lambda v: " / ".join(f"{x:.1f}" for x in np.percentile((v - t0) / 1e3, PERCENTILES))
    dur = lambda v: " / ".join(f"{x:.1f}" for x in np.percentile(v / 1e3, PERCENTILES))
    prep_text = pct(prep[:, 5]) + f" ({len(prep)} blocks)" if len(prep) else "- (no prep kernel)"
    fin_text = pct(fin[:, 5]) if len(fin) else "-"
    print(f"{head} {call:.1f} | {prep_text} | {pct(main_[:, 0])} | {pct(main_[:, 1])} | {pct(main_[:, 4])} | "
          f"{pct(main_[:, 5])} | {dur(main_[:, 1] - main_[:, 0])} | {dur(main_[:, 4] - main_[:, 3])} | {fin_text} |",
          flush=True)


if __name__ == "__main__":
    main()
