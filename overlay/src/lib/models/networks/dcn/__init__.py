"""Compile-free modulated deformable convolution (DCNv2) for CenterNet, installed by centernet-trt.

Replaces upstream's bundled ``DCNv2`` extension (cffi/THC, unbuildable on PyTorch >= 1.0). The networks
import ``ModulatedDeformConvPack as DCN`` from here (see patches/0001).
"""
from .modulated_deform_conv import (
    ModulatedDeformConv2d,
    ModulatedDeformConv2dFunction,
    ModulatedDeformConv2dPack,
    ModulatedDeformConvPack,
    get_backend,
    modulated_deform_conv2d,
    onnx_export_mode,
    set_backend,
)

__all__ = [
    "ModulatedDeformConv2d",
    "ModulatedDeformConv2dFunction",
    "ModulatedDeformConv2dPack",
    "ModulatedDeformConvPack",
    "get_backend",
    "modulated_deform_conv2d",
    "onnx_export_mode",
    "set_backend",
]
