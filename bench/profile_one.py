"""Run the DCNv2 kernel on one shape a few times (a target for ncu / compute-sanitizer; no timing of its own).

Usage: python3 bench/profile_one.py N C H W COUT [fp16|tf32|fp32] [splits] [kernel variant]
"""
from __future__ import annotations

import sys

import torch

import dcn_ctypes


def main() -> None:
    n, c, h, w, cout = map(int, sys.argv[1:6])
    mode = sys.argv[6] if len(sys.argv) > 6 else "fp16"
    splits = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    variant = int(sys.argv[8]) if len(sys.argv) > 8 else 0
    dtype = torch.float16 if mode == "fp16" else torch.float32
    lib = dcn_ctypes.load()
    lib.centernet_dcnv2_set_splits(splits)
    lib.centernet_dcnv2_set_variant(variant)
    x = torch.randn(n, c, h, w, device="cuda", dtype=dtype)
    off = (torch.randn(n, 18, h, w, device="cuda") * 2).to(dtype)
    mask = torch.rand(n, 9, h, w, device="cuda", dtype=dtype)
    weight = torch.randn(cout, c, 3, 3, device="cuda", dtype=dtype) * 0.05
    bias = torch.randn(cout, device="cuda", dtype=dtype)
    dcn = dcn_ctypes.DCN(lib, (n, c, h, w), cout, dtype=dtype, allow_tf32=mode != "fp32")
    out = torch.empty(dcn.out_shape, device="cuda", dtype=dtype)
    for _ in range(3):
        dcn(x, off, mask, weight, bias, out)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
