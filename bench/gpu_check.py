"""GPU correctness of the DCNv2 kernel (plugin/dcnv2Kernel.cu) against float64 references.

References: torchvision.ops.deform_conv2d run in float64 (on the same, already-rounded inputs) for every case,
plus a direct loop-based float64 implementation of the sampling rule for tiny cases. Every case draws fresh
random data with fractional and out-of-range offsets and poisons the output with NaN before each run. Each case
also runs with channels-last tensors (the plugin's kHWC8 / kHWC input, output and weight; LAYOUT_RUNS): each must
match the reference and, where the table says so, be bitwise equal to the NCHW call on the same data. TF32 layers
that gather from an fp16 copy of an NCHW input (v30) are checked against float64 like the rest, and their range
guard (inputs beyond fp16's range, tiny, with a NaN; half_copy_guard) against float64 and, for the NaN, the same
layer without the copy. Since v34 those layers run on fp16 tensor cores (the fp16 kernel's K loop on the copy and an
fp16 weight pack); every TF32 case and the guard also run with v32's TF32 K loop (the no-hmma runs).
Exit code 1 if any case misses its tolerance: fp32 strict 1e-5, fp32 TF32 1e-3, fp16 1e-2 (relative L2).
"""
from __future__ import annotations

import argparse
import ctypes
import math
import sys

import numpy as np
import torch
from torchvision.ops import deform_conv2d

import dcn_ctypes

TOL = {"fp32": 1e-5, "tf32": 1e-3, "fp16": 1e-2}

# (N, C, H, W, Cout, k, stride, pad, dil, groups, dg)
BASELINE = [(1, 64, 128, 128, 64), (1, 128, 64, 64, 64), (1, 256, 32, 32, 64), (1, 128, 64, 64, 128),
            (1, 256, 32, 32, 128), (1, 512, 16, 16, 256), (1, 256, 32, 32, 256), (8, 64, 128, 128, 64)]
CASES = [dict(shape=s) for s in BASELINE] + [
    dict(shape=(1, 64, 37, 53, 64)),                       # H, W not tile multiples
    dict(shape=(3, 32, 29, 41, 48)),                       # batch > 1, Cout not a tile multiple
    dict(shape=(2, 64, 37, 53, 96), dg=2),                 # deformable groups
    dict(shape=(2, 64, 40, 33, 64), stride=(2, 2)),        # stride 2
    dict(shape=(1, 64, 31, 31, 64), groups=2),             # grouped conv
    dict(shape=(1, 64, 30, 30, 32), groups=4, dg=4),
    dict(shape=(1, 32, 27, 19, 40), dil=(2, 2), pad=(2, 2)),
    dict(shape=(2, 12, 23, 17, 10), dg=2),                 # channels not multiples of the vector width
    dict(shape=(1, 16, 20, 24, 24), k=(1, 1), pad=(0, 0)),
    dict(shape=(1, 24, 21, 22, 16), k=(5, 3), pad=(2, 1), stride=(1, 2)),
    dict(shape=(2, 40, 33, 35, 72), dg=5, stride=(2, 1)),
    dict(shape=(1, 64, 37, 53, 64), bias=False),
    dict(shape=(1, 64, 20, 20, 128), dg=8),                # large sampling table: the smallest warpgroup stages
    dict(shape=(8, 72, 96, 90, 32)),                       # fp16 register transpose: C, H*W not its tile multiples
    dict(shape=(2, 64, 72, 72, 128)),                      # 162 tiles of 128 channels: more than one wave
    dict(shape=(1, 64, 31, 31, 256), groups=2),            # 128-channel tiles of two conv groups
    dict(shape=(1, 16, 96, 96, 64)),                       # 144 small 64-channel tiles: the two-block configuration
    dict(shape=(1, 64, 24, 24, 128)),                      # TF32 256-byte steps with 128-channel tiles (small)
    dict(shape=(1, 64, 20, 20, 64), k=(7, 7), pad=(3, 3)), # 7x7: TF32's table too large for cfg 3's stages (cfg 2)
    dict(shape=(1, 256, 48, 48, 200)),                     # 256-channel tiles (v28), Cout not a multiple of them
    dict(shape=(1, 32, 96, 96, 64)),                       # TF32 from the fp16 copy in 128-byte steps (cfg 1, v30)
    dict(shape=(1, 520, 8, 8, 200)),                       # the weight pack staged in shared memory (v51), C and
                                                           # Cout not multiples of its runs or tiles
]
QUICK = [8, 9, 10, 15, 25, 28, 29]  # small cases, for compute-sanitizer's memcheck (bench/gpu_run.sh); 25 and 28 take
                                    # the fp16 copy in TF32 (256- and 128-byte steps), 29 the staged weight pack
# The fp16 copy's range guard (v30): layers that take the copy in TF32 (cfg 3, cfg 1, a batch, a grouped layer), each
# with inputs the copy cannot hold (the whole input, and the bias with it, scaled by 1e5, beyond the copy's range, or
# by 1e-7, every transpose tile below 2^-17: every block redoes its K range from the fp32 input and weight in plain
# fp32 (v31), so the output must meet strict fp32's tolerance against float64, which the TF32 path cannot), scaled by
# 1e-4, and by 1e-5 with the masks by 1e-3 (the copy holds them, v32's normalized blend weights keep the products in
# fp16's range: TF32's tolerance, and above strict fp32's, so the fast path ran), one value of 1e6 (only the blocks
# that gather it redo: TF32's tolerance) and one NaN, inside the image and at pixel (0, 0) of image 0, the element
# unused corners read with weight 0 (NaN exactly where the layer without the copy has it).
GUARD_CASES = [dict(shape=(1, 64, 24, 24, 128)), dict(shape=(1, 32, 96, 96, 64)), dict(shape=(2, 64, 32, 40, 64)),
               # conv groups and deformable groups, a partial tile of output channels (the redo's own indexing)
               dict(shape=(1, 128, 24, 24, 80), groups=2, dg=2),
               # 256-byte steps under the fp16 MMA (v41: 128 channels a step, the redo's four fp32 rows a step)
               dict(shape=(1, 128, 24, 24, 64)),
               # the fp16 MMA's 128-channel N-split kernel, the capped entry (v49: 160 registers), and its redo
               dict(shape=(1, 256, 32, 32, 128))]


# Channels-last runs, the default variant: name, algorithm (0 fused, 1 im2col + cuBLAS), input / output / weight
# channels-last, and whether the output must be bitwise equal to the all-NCHW call of the same algorithm. The fused
# kernel computes the same sums in the same order in every layout, except TF32 with the weight channels-last (the
# pack rounds the weight to TF32, the warpgroup kernel's direct copy hands the tensor cores its fp32 values: against
# the reference only); the im2col tactic only with the input alone (a transposed or reordered GEMM may take another
# cuBLAS algorithm).
LAYOUT_RUNS = [
    ("nhwc", 0, True, False, False, True),
    ("nhwc-io", 0, True, True, False, True),
    ("nhwc-w", 0, False, False, True, True),
    ("nhwc-all", 0, True, True, True, True),
    ("im2col-nhwc", 1, True, False, False, True),
    ("im2col-nhwc-io", 1, True, True, False, False),
    ("im2col-nhwc-w", 1, False, False, True, False),
]


def make_inputs(case, dtype, gen):
    n, c, h, w, cout = case["shape"]
    k, stride, pad, dil = case.get("k", (3, 3)), case.get("stride", (1, 1)), case.get("pad", (1, 1)), case.get("dil", (1, 1))
    groups, dg = case.get("groups", 1), case.get("dg", 1)
    ho = dcn_ctypes.out_size(h, k[0], stride[0], pad[0], dil[0])
    wo = dcn_ctypes.out_size(w, k[1], stride[1], pad[1], dil[1])
    kk = k[0] * k[1]
    dev = "cuda"
    x = torch.randn(n, c, h, w, generator=gen, device=dev)
    off = torch.randn(n, 2 * dg * kk, ho, wo, generator=gen, device=dev) * 2.5  # fractional
    far = torch.rand(off.shape, generator=gen, device=dev) < 0.15               # out of range, both sides
    span = float(max(h, w))
    off = torch.where(far, (torch.rand(off.shape, generator=gen, device=dev) * 2 - 1) * (span + 4), off)
    mask = torch.sigmoid(torch.randn(n, dg * kk, ho, wo, generator=gen, device=dev))
    fan_in = c // groups * kk
    weight = torch.randn(cout, c // groups, k[0], k[1], generator=gen, device=dev) / math.sqrt(fan_in)
    bias = torch.randn(cout, generator=gen, device=dev) if case.get("bias", True) else None
    cast = lambda t: None if t is None else t.to(dtype).contiguous()
    return [cast(t) for t in (x, off, mask, weight, bias)], dict(k=k, stride=stride, pad=pad, dil=dil, groups=groups, dg=dg)


def tv_forward(x, off, mask, weight, bias, cfg):
    """torchvision's deform_conv2d (it infers conv groups from weight.shape[1])."""
    return deform_conv2d(x, off, weight, bias, stride=cfg["stride"], padding=cfg["pad"], dilation=cfg["dil"],
                         mask=mask)


def loop_reference(x, off, mask, weight, bias, cfg):
    """Direct float64 implementation of modulated deformable conv (groups == 1), written from the definition."""
    x, off, mask, weight = (t.double().cpu().numpy() for t in (x, off, mask, weight))
    n, c, h, w = x.shape
    cout, _, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw), dg = cfg["stride"], cfg["pad"], cfg["dil"], cfg["dg"]
    ho, wo = off.shape[2:]
    cdg = c // dg
    cols = np.zeros((n, c, kh * kw, ho, wo))
    for b in range(n):
        for d in range(dg):
            for i in range(kh):
                for j in range(kw):
                    t = i * kw + j
                    for oy in range(ho):
                        for ox in range(wo):
                            y = oy * sh - ph + i * dh + off[b, 2 * (d * kh * kw + t), oy, ox]
                            xx = ox * sw - pw + j * dw + off[b, 2 * (d * kh * kw + t) + 1, oy, ox]
                            if not (-1 < y < h and -1 < xx < w):
                                continue
                            y0, x0 = math.floor(y), math.floor(xx)
                            val = np.zeros(cdg)
                            for yy, xq, wt in ((y0, x0, (y0 + 1 - y) * (x0 + 1 - xx)), (y0, x0 + 1, (y0 + 1 - y) * (xx - x0)),
                                               (y0 + 1, x0, (y - y0) * (x0 + 1 - xx)), (y0 + 1, x0 + 1, (y - y0) * (xx - x0))):
                                if 0 <= yy < h and 0 <= xq < w:
                                    val += wt * x[b, d * cdg:(d + 1) * cdg, yy, xq]
                            cols[b, d * cdg:(d + 1) * cdg, t, oy, ox] = val * mask[b, d * kh * kw + t, oy, ox]
    out = np.einsum("bctyx,oct->boyx", cols, weight.reshape(cout, c, kh * kw))
    if bias is not None:
        out += bias.double().cpu().numpy()[None, :, None, None]
    return torch.from_numpy(out)


def rel(a, b):
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def run_ours(lib, case, inputs, cfg, dtype, allow_tf32, nhwc=False, nhwc_out=False, nhwc_w=False, half_copy=True,
             hmma=True):
    """Our output (every element written over a NaN poison) and the fused path's launch plan in words; nhwc /
    nhwc_out / nhwc_w: the input handed over / the output written / the weight handed over channels-last (as the
    plugin's kHWC8 / kHWC tensors); half_copy False: TF32 gathers from the fp32 copy (as before v30); hmma False: TF32
    layers that take the fp16 copy keep v32's TF32 K loop (no fp16 MMA, v34; builds before v34 have only that one)."""
    set_hmma = getattr(lib, "centernet_dcnv2_set_hmma", lambda on: None)
    lib.centernet_dcnv2_set_half_copy(int(half_copy))
    set_hmma(int(hmma))
    try:
        return _run_ours(lib, case, inputs, cfg, dtype, allow_tf32, nhwc, nhwc_out, nhwc_w)
    finally:
        lib.centernet_dcnv2_set_half_copy(1)
        set_hmma(1)


def _run_ours(lib, case, inputs, cfg, dtype, allow_tf32, nhwc, nhwc_out, nhwc_w):
    x, off, mask, weight, bias = inputs
    n, c, h, w, cout = case["shape"]
    dcn = dcn_ctypes.DCN(lib, (n, c, h, w), cout, k=cfg["k"], stride=cfg["stride"], pad=cfg["pad"], dil=cfg["dil"],
                         groups=cfg["groups"], dg=cfg["dg"], dtype=dtype, allow_tf32=allow_tf32, input_nhwc=nhwc,
                         output_nhwc=nhwc_out, weight_nhwc=nhwc_w)
    out = torch.full(dcn.out_shape, float("nan"), dtype=dtype, device="cuda")  # poison: every element must be written
    if nhwc_out:
        out = out.contiguous(memory_format=torch.channels_last)
    if nhwc:
        x = x.contiguous(memory_format=torch.channels_last)
    if nhwc_w:
        weight = weight.contiguous(memory_format=torch.channels_last)
    dcn(x, off, mask, weight, bias, out)
    torch.cuda.synchronize()
    return out, dcn.plan


def half_copy_guard(lib, gen, cases, hmma=True) -> int:
    """The fp16 copy's range guard on these GUARD_CASES, in TF32 (hmma False: with v32's TF32 K loop instead of the
    fp16 MMA of v34). Returns the number of failures."""
    if not hmma and not hasattr(lib, "centernet_dcnv2_set_hmma"):
        return 0  # (a build before v34: the one K loop it has is checked by the other call)
    tag = "" if hmma else " [no fp16 MMA]"
    failures = 0
    for case in cases:
        shape = case["shape"]
        inputs, cfg = make_inputs(case, torch.float32, gen)
        x = inputs[0]
        n, c, h, w, _ = shape
        spike, nan, nan0 = x.clone(), x.clone(), x.clone()
        spike[n - 1, c // 3, h // 2, w // 2] = 1e6
        nan[0, c // 2, h // 3, w // 4] = float("nan")
        nan0[0, c // 2, 0, 0] = float("nan")  # the element the gathers' unused corners read (with weight 0)
        plan = run_ours(lib, case, inputs, cfg, torch.float32, True, hmma=hmma)[1]
        ok = "fp16 copy" in plan
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} guard {shape}{tag}: the layer takes the fp16 copy [{plan}]")
        bias = inputs[4]
        mask = inputs[2]
        for label, xs, scale, mask_scale, nhwc_w, w_scale in (
                ("x 1e5", x * 1e5, 1e5, 1.0, False, 1.0), ("x 1e-7", x * 1e-7, 1e-7, 1.0, False, 1.0),
                ("x 1e-4", x * 1e-4, 1e-4, 1.0, False, 1.0),
                # small inputs times small masks (the bias as small, so that it does not hide the sums' error):
                # products far below fp16's normal range unless the blend's weights are normalized (v32), while every
                # tile stays above the tiny-tile threshold: the fast path
                ("x 1e-5, mask x 1e-3", x * 1e-5, 1e-5, 1e-3, False, 1.0),
                # weights that the fp16 MMA's pack (2^12 x w, v34) holds as Inf or only as fp16 subnormals (|w| < 2^-26:
                # written as NaN since v35): every block that reads them redoes; v32's TF32 K loop holds them as they are
                ("weight x 1e3", x, 1e3, 1.0, False, 1e3), ("weight x 1e-9", x, 1e-9, 1.0, False, 1e-9),
                ("one value 1e6", spike, 1.0, 1.0, False, 1.0), ("one NaN", nan, 1.0, 1.0, False, 1.0),
                ("one NaN at pixel (0, 0)", nan0, 1.0, 1.0, False, 1.0),
                # the redo reads the weight as it lies, [Cout][kh][kw][Cin]
                ("x 1e5, weight channels-last", x * 1e5, 1e5, 1.0, True, 1.0)):
            run = [xs, inputs[1], mask * mask_scale, inputs[3] * w_scale,
                   None if bias is None else bias * scale * mask_scale]
            out, plan = run_ours(lib, case, run, cfg, torch.float32, True, nhwc_w=nhwc_w, hmma=hmma)
            if label.startswith("one NaN"):
                plain = run_ours(lib, case, run, cfg, torch.float32, True, nhwc_w=nhwc_w, half_copy=False)[0]
                where = torch.isnan(out)
                ok = torch.equal(where, torch.isnan(plain)) and bool(where.any()) and bool((~where).any())
                err = rel(out[~where], plain[~where]) if ok else float("nan")
                ok = ok and err <= TOL["tf32"]
                what = f"NaN where the fp32 gathers have it, the rest rel {err:.2e} to them"
            else:
                err = rel(out, tv_forward(*[None if t is None else t.double() for t in run], cfg))
                # every block redoes in plain fp32: strict fp32's tolerance, which TF32 (~1e-4) cannot meet; the
                # copy holds the small inputs: TF32's tolerance, and an error above strict fp32's (the fast path ran:
                # not every block redid)
                mma = "fp16 MMA" in plan
                whole = label.startswith(("x 1e5", "x 1e-7")) or (mma and label.startswith("weight x"))
                fast = label.startswith(("x 1e-4", "x 1e-5")) or (not mma and label.startswith("weight x"))
                ok = bool(torch.isfinite(out).all()) and err <= TOL["fp32" if whole else "tf32"]
                ok = ok and (not fast or err > TOL["fp32"])
                what = f"rel_vs_f64={err:.2e}" + (" (every block redone in fp32)" if whole else
                                                  " (the fast path: TF32's error)" if fast else "")
            ok = ok and "fp16 copy" in plan
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} guard {shape}{tag} {label}: {what}", flush=True)
        # one output channel's weights (and bias, so that its sums are not hidden) x 1e-9: that channel at TF32's
        # precision too, which the whole output's error would not show (v34's fp16 MMA: ~2e-2 on it)
        ch = shape[4] // 2
        w_scale = torch.ones(shape[4], 1, 1, 1, device="cuda")
        w_scale[ch] = 1e-9
        run = [x, inputs[1], mask, inputs[3] * w_scale, None if bias is None else bias * w_scale.flatten()]
        out, plan = run_ours(lib, case, run, cfg, torch.float32, True, hmma=hmma)
        ref = tv_forward(*[None if t is None else t.double() for t in run], cfg)
        err_ch, err = rel(out[:, ch], ref[:, ch]), rel(out, ref)
        ok = bool(torch.isfinite(out).all()) and max(err_ch, err) <= TOL["tf32"] and "fp16 copy" in plan
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} guard {shape}{tag} output channel {ch}'s weights x 1e-9: rel_vs_f64 "
              f"{err_ch:.2e} on it, {err:.2e} on all", flush=True)
    return failures


def first_call_captures(lib, gen) -> int:
    """The process's first call with a channels-last weight, made inside a CUDA graph capture (as TensorRT may make
    it: a deserialized engine's first enqueue under capture), where the warpgroup kernel looks up the driver's
    tensor-map encoder: it must capture, replay and match the reference. Returns the number of failures (0 / 1)."""
    case = dict(shape=(1, 64, 20, 24, 64))
    inputs, cfg = make_inputs(case, torch.float32, gen)
    n, c, h, w, cout = case["shape"]
    dcn = dcn_ctypes.DCN(lib, (n, c, h, w), cout, dtype=torch.float32, weight_nhwc=True)
    x, off, mask, weight, bias = inputs
    weight_cl = weight.contiguous(memory_format=torch.channels_last)
    out = torch.full(dcn.out_shape, float("nan"), device="cuda")
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):  # global capture mode: an unsafe call inside would end the capture in an error
            dcn(x, off, mask, weight_cl, bias, out)
        graph.replay()
        torch.cuda.synchronize()
        err = rel(out, tv_forward(*[None if t is None else t.double() for t in inputs], cfg))
        ok = bool(torch.isfinite(out).all()) and err <= TOL["tf32"]
        detail = f"rel_vs_f64={err:.2e} [{dcn.plan}]"
    except RuntimeError as e:
        ok, detail = False, str(e)
    print(f"{'ok  ' if ok else 'FAIL'} first channels-last-weight call of the process inside a CUDA graph capture: "
          f"captured, replayed, {detail}")
    return int(not ok)


def second_context_runs(lib, gen) -> int:
    """A call made in a second CUDA context on the same GPU (a process may run TensorRT in its own context beside
    PyTorch's primary one), after the library has run the same layer in the primary context: what the library keeps
    between calls (device properties, the kernels' shared-memory limits and carveouts, set once per device since CUDA
    12 keeps them for every context on it) must hold there too: the call runs and gives the primary context's bits.
    Driven through the driver API (ctypes, libcuda): the buffers are the second context's own. Returns the number of
    failures."""
    cu = ctypes.CDLL("libcuda.so.1")

    def check(rc, what):
        if rc != 0:
            raise RuntimeError(f"{what}: CUresult {rc}")

    failures = 0
    for mode, dtype, tf32 in (("fp16", torch.float16, True), ("tf32", torch.float32, True)):
        case = dict(shape=(1, 64, 24, 24, 64))
        inputs, cfg = make_inputs(case, dtype, gen)
        n, c, h, w, cout = case["shape"]
        dcn = dcn_ctypes.DCN(lib, (n, c, h, w), cout, dtype=dtype, allow_tf32=tf32)
        want = torch.full(dcn.out_shape, float("nan"), dtype=dtype, device="cuda")
        dcn(*inputs, want)
        torch.cuda.synchronize()
        host = [t.contiguous().cpu() for t in inputs] + [torch.empty(dcn.out_shape, dtype=dtype)]  # ..., output
        dev, ctx = ctypes.c_int(), ctypes.c_void_p()
        ptrs = []
        try:
            check(cu.cuInit(0), "cuInit")
            check(cu.cuDeviceGet(ctypes.byref(dev), torch.cuda.current_device()), "cuDeviceGet")
            check(cu.cuCtxCreate_v2(ctypes.byref(ctx), 0, dev), "cuCtxCreate")  # (now current in this thread)
            try:
                sizes = [t.numel() * t.element_size() for t in host] + [max(dcn.ws_bytes, 1)]  # + workspace
                for size in sizes:
                    p = ctypes.c_uint64()
                    check(cu.cuMemAlloc_v2(ctypes.byref(p), ctypes.c_size_t(size)), "cuMemAlloc")
                    ptrs.append(p.value)
                for t, p in zip(host[:5], ptrs):
                    check(cu.cuMemcpyHtoD_v2(ctypes.c_uint64(p), ctypes.c_void_p(t.data_ptr()),
                                             ctypes.c_size_t(t.numel() * t.element_size())), "cuMemcpyHtoD")
                rc = lib.centernet_dcnv2_forward(*dcn.ints, *ptrs, dcn.ws_bytes, None)
                check(cu.cuCtxSynchronize(), "cuCtxSynchronize")
                out = host[5]
                check(cu.cuMemcpyDtoH_v2(ctypes.c_void_p(out.data_ptr()), ctypes.c_uint64(ptrs[5]),
                                         ctypes.c_size_t(out.numel() * out.element_size())), "cuMemcpyDtoH")
            finally:
                for p in ptrs:
                    cu.cuMemFree_v2(ctypes.c_uint64(p))
                cu.cuCtxDestroy_v2(ctx)  # (the primary context current again)
            ok = rc == 0 and torch.equal(out, want.cpu())
            detail = f"rc {rc}, bitwise the primary context's output: {torch.equal(out, want.cpu())}"
        except RuntimeError as e:
            ok, detail = False, str(e)
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {mode} {case['shape']} in a second CUDA context after the primary one: "
              f"{detail} [{dcn.plan}]")
    return failures


def cases_arg(text: str) -> list[int]:
    """--cases: comma-separated indices into CASES."""
    try:
        picked = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        picked = []
    if not picked or any(not 0 <= i < len(CASES) for i in picked):
        raise argparse.ArgumentTypeError(f"{text!r}: want comma-separated indices 0-{len(CASES) - 1} into CASES, "
                                         f"e.g. {','.join(map(str, QUICK))}")
    return picked


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=None)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--quick", action="store_true", help="a few small cases (for compute-sanitizer): --cases "
                    + ",".join(map(str, QUICK)))
    ap.add_argument("--cases", type=cases_arg, default=None,
                    help=f"indices into CASES (0-{len(CASES) - 1}, comma-separated): run only these, e.g. to split a "
                         "racecheck run over several calls")
    ap.add_argument("--variants", default=dcn_ctypes.DEFAULT_VARIANTS,
                    help=dcn_ctypes.VARIANTS_HELP + "; the first with the split-K heuristic and a forced split, the "
                         "others with the heuristic")
    args = ap.parse_args()
    picked = args.cases if args.cases is not None else QUICK if args.quick else range(len(CASES))
    cases = [CASES[i] for i in picked]
    lib = dcn_ctypes.load(args.lib)
    gen = torch.Generator(device="cuda").manual_seed(args.seed)
    print(f"device: {torch.cuda.get_device_name()}")
    failures = first_call_captures(lib, gen)
    failures += second_context_runs(lib, gen)
    rows = []
    modes = [("fp16", torch.float16, True), ("tf32", torch.float32, True), ("fp32", torch.float32, False)]
    variants = [int(v) for v in args.variants.split(",")]
    if not hasattr(lib, "centernet_dcnv2_set_variant"):
        variants = variants[:1]
    set_variant = getattr(lib, "centernet_dcnv2_set_variant", lambda v: None)
    # the im2col + cuBLAS tactic too, where cuBLAS loads (each case it takes, every precision)
    no_col = lib.centernet_dcnv2_set_algo(1)
    lib.centernet_dcnv2_set_algo(0)
    print(f"im2col tactic: {'not checked: ' + no_col.decode() if no_col else 'checked'}")
    for case in cases:
        for mode, dtype, tf32 in modes:
            # heuristic split-K and a forced split (both paths of the kernel) for the default variant; the
            # heuristic for the others (strict fp32 has one kernel)
            runs = [(variants[0], 0), (variants[0], 3)] + [(v, 0) for v in variants[1:] if mode != "fp32"]
            runs += [(variants[0], 2)]  # two splits added in the output (fp32 v27, fp16 v42)
            # TF32: v32's K loop too (v34 runs fp32 layers that take the fp16 copy on fp16 tensor cores)
            runs += [("no-hmma", 0)] if mode == "tf32" and hasattr(lib, "centernet_dcnv2_set_hmma") else []
            runs += [] if no_col else [("im2col", 0)]
            runs += [(run, 0) for run in LAYOUT_RUNS if run[1] == 0 or not no_col]
            for variant, splits in runs:
                inputs, cfg = make_inputs(case, dtype, gen)  # fresh data for every run
                ref = tv_forward(*[None if t is None else t.double() for t in inputs], cfg)
                bits_ok = True
                if isinstance(variant, tuple):  # a LAYOUT_RUNS entry
                    name, algo, nhwc, nhwc_out, nhwc_w, bitwise = variant
                    bitwise = bitwise and not (mode == "tf32" and nhwc_w)
                    lib.centernet_dcnv2_set_algo(algo)
                    try:
                        out, plan = run_ours(lib, case, inputs, cfg, dtype, tf32, nhwc, nhwc_out, nhwc_w)
                        if bitwise:  # (a channels-last input is read in place: its partner gathers fp32 too)
                            bits_ok = torch.equal(out, run_ours(lib, case, inputs, cfg, dtype, tf32,
                                                                half_copy=not nhwc)[0])
                    except ValueError:  # a layer the im2col tactic does not take (the fused kernel covers it)
                        continue
                    finally:
                        lib.centernet_dcnv2_set_algo(0)
                    variant = name
                elif variant == "no-hmma":
                    out, plan = run_ours(lib, case, inputs, cfg, dtype, tf32, hmma=False)
                elif variant == "im2col":
                    lib.centernet_dcnv2_set_algo(1)
                    try:
                        out, _ = run_ours(lib, case, inputs, cfg, dtype, tf32)
                    except ValueError:
                        continue
                    finally:
                        lib.centernet_dcnv2_set_algo(0)
                else:
                    set_variant(variant)
                    lib.centernet_dcnv2_set_splits(splits)
                    out, plan = run_ours(lib, case, inputs, cfg, dtype, tf32)
                    if "added in the output" in plan:  # atomic adds in any order: the same bits every run (v27, v42)
                        bits_ok = all(torch.equal(out, run_ours(lib, case, inputs, cfg, dtype, tf32)[0])
                                           for _ in range(3))
                    lib.centernet_dcnv2_set_splits(0)
                    set_variant(variants[0])
                finite = bool(torch.isfinite(out).all())
                err = rel(out, ref) if finite else float("nan")
                err_tv = rel(out, tv_forward(*inputs, cfg))
                ok = finite and err <= TOL[mode] and bits_ok
                failures += not ok
                rows.append((case, mode, splits, err, err_tv, ok))
                shown = " [im2col]" if str(variant).startswith("im2col") else f" [{plan}]"  # the fused path's plan
                shown += "" if bits_ok else (" NOT BITWISE EQUAL TO THE NCHW CALL" if isinstance(variant, str)
                                                  else " NOT THE SAME BITS ON EVERY RUN")
                print(f"{'ok  ' if ok else 'FAIL'} {mode} variant={variant} splits={'auto' if splits == 0 else splits} "
                      f"{case} rel_vs_f64={err:.2e} rel_vs_torchvision_same_dtype={err_tv:.2e} tol={TOL[mode]:.0e}"
                      f"{shown}", flush=True)
    # tiny cases against the direct loop reference (independent of torchvision)
    for case in [dict(shape=(2, 8, 7, 9, 6), dg=2), dict(shape=(1, 16, 6, 5, 8), stride=(2, 2))]:
        for mode, dtype, tf32 in modes:
            inputs, cfg = make_inputs(case, dtype, gen)
            ref = loop_reference(*inputs, cfg)
            tv = tv_forward(*[None if t is None else t.double() for t in inputs], cfg)
            out, _ = run_ours(lib, case, inputs, cfg, dtype, tf32)
            err, err_tv64 = rel(out, ref), rel(tv, ref)
            ok = bool(torch.isfinite(out).all()) and err <= TOL[mode] and err_tv64 < 1e-12
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} loop-ref {mode} {case} rel_vs_loop={err:.2e} "
                  f"torchvision64_vs_loop={err_tv64:.1e}", flush=True)
    for hmma in (True, False):
        failures += half_copy_guard(lib, gen, GUARD_CASES[:2] if args.quick else GUARD_CASES, hmma)
    # rejected parameters must be reported, not computed
    bad = [1, 30, 8, 8, 16, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 4, 1, 1, 1, 0, 0, 0]  # 30 channels, groups 4
    msg = lib.centernet_dcnv2_check_supported(*bad)
    print(f"{'ok  ' if msg else 'FAIL'} rejects C % groups != 0: {msg!r}")
    failures += not msg
    # a channels-last input or weight off the 16-byte alignment its vector loads / copies need: refused
    # (cudaErrorMisalignedAddress), the output untouched
    case = dict(shape=(1, 64, 20, 24, 64))
    inputs, cfg = make_inputs(case, torch.float16, gen)
    for which, name in ((0, "input"), (3, "weight")):
        t = inputs[which]
        n_, c_, h_, w_ = t.shape
        flat = torch.empty(t.numel() + 8, dtype=torch.float16, device="cuda")
        shifted = flat.narrow(0, 1, t.numel()).view(n_, h_, w_, c_).permute(0, 3, 1, 2)  # channels-last, 2 bytes off
        shifted.copy_(t)
        misaligned = list(inputs)
        misaligned[which] = shifted
        n, c, h, w, cout = case["shape"]
        dcn = dcn_ctypes.DCN(lib, (n, c, h, w), cout, dtype=torch.float16, input_nhwc=which == 0,
                             weight_nhwc=which == 3)
        out = torch.full(dcn.out_shape, float("nan"), dtype=torch.float16, device="cuda")
        try:
            dcn(*misaligned, out)
            refused = False
        except RuntimeError as e:
            refused = "cudaError 716" in str(e)
        torch.cuda.synchronize()
        ok = refused and bool(torch.isnan(out).all())
        print(f"{'ok  ' if ok else 'FAIL'} refuses a misaligned channels-last {name} (cudaErrorMisalignedAddress), "
              "output untouched")
        failures += not ok
    # an NCHW fp32 input off the 16-byte alignment the fp16 copy needs: planned with the fp32 copy (forwardT passes
    # the input's alignment to the plan), so bitwise the aligned input's run without the copy
    case = dict(shape=(1, 32, 96, 96, 64))
    inputs, cfg = make_inputs(case, torch.float32, gen)
    x = inputs[0]
    shifted = torch.empty(x.numel() + 4, dtype=torch.float32, device="cuda").narrow(0, 1, x.numel()).view_as(x)
    shifted.copy_(x)  # 4 bytes off
    out = run_ours(lib, case, [shifted] + list(inputs[1:]), cfg, torch.float32, True)[0]
    plain = run_ours(lib, case, inputs, cfg, torch.float32, True, half_copy=False)[0]
    err = rel(out, tv_forward(*[None if t is None else t.double() for t in inputs], cfg))
    ok = shifted.data_ptr() % 16 != 0 and torch.equal(out, plain) and err <= TOL["tf32"]
    print(f"{'ok  ' if ok else 'FAIL'} a misaligned NCHW TF32 input takes the fp32 copy: bitwise the aligned input "
          f"without the copy, rel_vs_f64={err:.2e}")
    failures += not ok
    # the warpgroup kernel reads a channels-last weight as it lies: its workspace has no room for a packed copy
    for mode, dtype, tf32 in modes[:2]:
        for shape in BASELINE:
            n, c, h, w, cout = shape
            lin, cl = (dcn_ctypes.DCN(lib, (n, c, h, w), cout, dtype=dtype, allow_tf32=tf32, weight_nhwc=f)
                       for f in (False, True))
            packed = c * 9 * ((cout + 127) // 128 * 128) * dtype.itemsize  # the pack's size (output rows padded to 128)
            want = lin.ws_bytes - (packed + 255) // 256 * 256 if lin.plan.startswith("warpgroup") else lin.ws_bytes
            ok = cl.ws_bytes == want
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {mode} {shape} workspace with the weight channels-last: {cl.ws_bytes} "
                  f"bytes (linear {lin.ws_bytes}, expected {want}) [{lin.plan}]")
    worst = {m: max((r[3] for r in rows if r[1] == m), default=0) for m, _, _ in modes}
    print(f"SUMMARY: {len(rows)} kernel runs, {failures} failures; worst rel error vs float64: "
          + ", ".join(f"{m}={v:.2e} (tol {TOL[m]:.0e})" for m, v in worst.items()))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
