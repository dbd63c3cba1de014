"""ctypes binding of the DCNv2 kernel's C ABI (plugin/dcnv2Kernel.h) for the GPU check and the benchmark."""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LIB = ROOT / "build" / "dcn_kernel" / "libdcnv2_kernel.so"

_INT_ARGS = ["batch", "inChannels", "inHeight", "inWidth", "outChannels", "outHeight", "outWidth", "kernelH",
             "kernelW", "strideH", "strideW", "padH", "padW", "dilationH", "dilationW", "groups",
             "deformableGroups", "allowTF32", "dtype", "inputNHWC", "outputNHWC", "weightNHWC"]


def load(path: str | os.PathLike | None = None) -> ctypes.CDLL:
    path = Path(path or os.environ.get("DCN_KERNEL_LIB", DEFAULT_LIB))
    if not path.exists():
        raise SystemExit(f"error: {path} not found; build it with `bash bench/gpu_run.sh` or `nvcc -std=c++17 -O3 "
                         f"-shared -Xcompiler -fPIC -arch=native -o {path} plugin/dcnv2Kernel.cu`")
    lib = ctypes.CDLL(str(path))
    ints = [ctypes.c_int] * len(_INT_ARGS)
    lib.centernet_dcnv2_forward.restype = ctypes.c_int
    lib.centernet_dcnv2_forward.argtypes = ints + [ctypes.c_void_p] * 7 + [ctypes.c_size_t, ctypes.c_void_p]
    lib.centernet_dcnv2_workspace_size.restype = ctypes.c_size_t
    lib.centernet_dcnv2_workspace_size.argtypes = ints
    if hasattr(lib, "centernet_dcnv2_workspace_as_planned"):  # the forward's "as the size query says" (absent before)
        lib.centernet_dcnv2_workspace_as_planned.restype = ctypes.c_size_t
        lib.centernet_dcnv2_workspace_as_planned.argtypes = []
    lib.centernet_dcnv2_check_supported.restype = ctypes.c_char_p
    lib.centernet_dcnv2_check_supported.argtypes = ints
    lib.centernet_dcnv2_set_splits.restype = None
    lib.centernet_dcnv2_set_splits.argtypes = [ctypes.c_int]
    lib.centernet_dcnv2_set_pdl.restype = None
    lib.centernet_dcnv2_set_pdl.argtypes = [ctypes.c_int]
    if hasattr(lib, "centernet_dcnv2_set_sum_in_output"):  # fp32 two-split sums in the output (v27) or the finalize
        lib.centernet_dcnv2_set_sum_in_output.restype = None
        lib.centernet_dcnv2_set_sum_in_output.argtypes = [ctypes.c_int]
    if hasattr(lib, "centernet_dcnv2_set_variant"):  # benchmark hook (kernel variants), absent in older builds
        lib.centernet_dcnv2_set_variant.restype = None
        lib.centernet_dcnv2_set_variant.argtypes = [ctypes.c_int]
    if hasattr(lib, "centernet_dcnv2_set_half_copy"):  # TF32 gathers from an fp16 copy of the input (v30) or not
        lib.centernet_dcnv2_set_half_copy.restype = None
        lib.centernet_dcnv2_set_half_copy.argtypes = [ctypes.c_int]
    if hasattr(lib, "centernet_dcnv2_set_hmma"):  # fp32 layers on fp16 tensor cores from the fp16 copy (v34) or not
        lib.centernet_dcnv2_set_hmma.restype = None
        lib.centernet_dcnv2_set_hmma.argtypes = [ctypes.c_int]
    if hasattr(lib, "centernet_dcnv2_plan"):  # the fused path's launch plan in words
        lib.centernet_dcnv2_plan.restype = ctypes.c_char_p
        lib.centernet_dcnv2_plan.argtypes = ints
    else:
        lib.centernet_dcnv2_plan = lambda *a: b"(no plan text in this build)"
    if hasattr(lib, "centernet_dcnv2_set_algo"):  # 0 = fused, 1 = im2col + cuBLAS (the plugin's tactics)
        lib.centernet_dcnv2_set_algo.restype = ctypes.c_char_p
        lib.centernet_dcnv2_set_algo.argtypes = [ctypes.c_int]
    else:
        lib.centernet_dcnv2_set_algo = lambda algo: None if algo == 0 else b"this build has no algorithm switch"
    return lib


# Kernel variants (dcnv2SetKernelVariant, a benchmark switch) and the default list the check and benchmark run.
VARIANTS_HELP = ("kernel variants on the tensor-core paths, comma-separated: 0 = default (warpgroup kernel on "
                 "sm_90a builds on compute capability 9.0, else register kernel), 1 = shared-memory tile kernel (v5), "
                 "2 = register kernel with 64-channel blocks only, 3 = register kernel (v7), 4 = one-warpgroup "
                 "warpgroup kernel (v8), 5 / 6 = warpgroup kernel forced to its 2x1-look-ahead / 1x2-look-ahead "
                 "configuration (v9, v10), 7 = warpgroup kernel with one 256-byte step of look-ahead (TF32 v11, fp16 "
                 "v41; the default where a step's channels divide the layer's and one block fits an SM), 8 = 256-channel tiles on every layer with more than 128 "
                 "output channels per group (v28; by default only where a block's K range is long; 4-7 never)")
DEFAULT_VARIANTS = "0,4,3,1"


def out_size(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


class DCN:
    """One configured forward: ``dcn(x, offset, mask, weight, bias, out)`` on the current stream."""

    def __init__(self, lib, x_shape, cout, k=(3, 3), stride=(1, 1), pad=(1, 1), dil=(1, 1), groups=1, dg=1,
                 dtype=torch.float16, allow_tf32=True, input_nhwc=False, output_nhwc=False, weight_nhwc=False):
        n, c, h, w = x_shape
        ho, wo = out_size(h, k[0], stride[0], pad[0], dil[0]), out_size(w, k[1], stride[1], pad[1], dil[1])
        self.lib, self.out_shape = lib, (n, cout, ho, wo)
        self.ints = [n, c, h, w, cout, ho, wo, k[0], k[1], stride[0], stride[1], pad[0], pad[1], dil[0], dil[1],
                     groups, dg, int(allow_tf32), 0 if dtype == torch.float32 else 1, int(input_nhwc), int(output_nhwc),
                     int(weight_nhwc)]
        self.input_nhwc, self.output_nhwc, self.weight_nhwc = input_nhwc, output_nhwc, weight_nhwc
        msg = lib.centernet_dcnv2_check_supported(*self.ints)
        if msg:
            raise ValueError(msg.decode())
        self.ws_bytes = lib.centernet_dcnv2_workspace_size(*self.ints)
        self.plan = lib.centernet_dcnv2_plan(*self.ints).decode()  # under the hooks set now, like the workspace
        self.ws = torch.empty(max(self.ws_bytes, 1), dtype=torch.uint8, device="cuda")

    def __call__(self, x, offset, mask, weight, bias, out):
        # input_nhwc / output_nhwc / weight_nhwc: x / out / weight are NCHW (OIHW) tensors in channels-last memory
        # (x.contiguous(memory_format=torch.channels_last), torch.empty(..., memory_format=torch.channels_last))
        layout = lambda nhwc: torch.channels_last if nhwc else torch.contiguous_format
        assert x.is_cuda and x.is_contiguous(memory_format=layout(self.input_nhwc))
        assert out.is_cuda and out.is_contiguous(memory_format=layout(self.output_nhwc))
        assert weight.is_cuda and weight.is_contiguous(memory_format=layout(self.weight_nhwc))
        for t in (offset, mask):
            assert t.is_cuda and t.is_contiguous()
        rc = self.lib.centernet_dcnv2_forward(
            *self.ints, x.data_ptr(), offset.data_ptr(), mask.data_ptr(), weight.data_ptr(),
            bias.data_ptr() if bias is not None else None, out.data_ptr(), self.ws.data_ptr(), self.ws_bytes,
            torch.cuda.current_stream().cuda_stream)
        if rc != 0:
            raise RuntimeError(f"centernet_dcnv2_forward returned cudaError {rc}")
        return out
