"""Modulated deformable convolution v2 with an mmcv-style API and upstream CenterNet's parameter names.

* ``ModulatedDeformConv2d``: ``forward(x, offset, mask)`` with parameters ``weight`` and ``bias``.
* ``ModulatedDeformConv2dPack`` (alias ``ModulatedDeformConvPack``): predicts offset and mask itself with
  ``conv_offset_mask`` exactly as upstream's ``DCN``: chunk(3) -> offset = cat(o1, o2), mask = sigmoid(m).
  Its constructor accepts upstream's call ``DCN(chi, cho, kernel_size=(3,3), stride=1, padding=1,
  dilation=1, deformable_groups=1)``; mmcv checkpoints (``conv_offset.*``) load too.
* Computation: ``torchvision.ops.deform_conv2d`` (CPU and CUDA, nothing to build); mmcv's
  ``modulated_deform_conv2d`` when installed and selected with ``set_backend("mmcv")`` or
  ``CENTERNET_DCN_BACKEND=mmcv``.
* ONNX: during ``torch.onnx.export`` the op goes through ``ModulatedDeformConv2dFunction`` whose
  ``symbolic`` emits, per ``onnx_export_mode``, either ``<domain>::DCNv2(input, offset, mask, weight, bias)``
  (int attrs stride, padding, dilation, groups, deformable_group - the TensorRT plugin's fields) or
  standard ONNX ``DeformConv`` (opset 19).
"""
from __future__ import annotations

import contextlib
import math
import os

import torch
import torchvision.ops
from torch import nn
from torch.autograd import Function
from torch.nn.modules.utils import _pair

_BACKENDS = ("torchvision", "mmcv")
_OPS = ("dcnv2", "deformconv")
_backend = os.environ.get("CENTERNET_DCN_BACKEND", "torchvision")
# Read by the symbolic at export time; changed only through onnx_export_mode().
_export = {"op": "dcnv2", "domain": "centernet_trt"}


def set_backend(name: str) -> None:
    """Select the eager implementation: "torchvision" (default) or "mmcv" (needs mmcv.ops installed)."""
    global _backend
    if name not in _BACKENDS:
        raise ValueError(f"DCN backend {name!r} is not one of {_BACKENDS}")
    if name == "mmcv":
        _mmcv_op()  # fail now, not at the first forward
    _backend = name


def get_backend() -> str:
    return _backend


@contextlib.contextmanager
def onnx_export_mode(op: str = "dcnv2", domain: str = "centernet_trt"):
    """How DCN layers export inside this block.

    op "dcnv2": ``<domain>::DCNv2`` for the TensorRT plugin (domain "" = the recipe's default-domain node);
    op "deformconv": standard ONNX ``DeformConv`` (opset >= 19; TensorRT >= 10.1 and ONNX Runtime run it).
    """
    if op not in _OPS:
        raise ValueError(f"DCN export op {op!r} is not one of {_OPS}")
    saved = dict(_export)
    _export.update(op=op, domain=domain)
    try:
        yield
    finally:
        _export.clear()
        _export.update(saved)


def _mmcv_op():
    try:
        from mmcv.ops import modulated_deform_conv2d
    except ImportError as exc:
        raise RuntimeError("DCN backend 'mmcv' needs mmcv with compiled ops (mmcv.ops); "
                           "install it or use the default torchvision backend") from exc
    return modulated_deform_conv2d


def _compute(x, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups):
    if _backend == "mmcv":
        return _mmcv_op()(x, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups)
    # torchvision infers groups from weight.shape[1] and deformable groups from offset.shape[1].
    return torchvision.ops.deform_conv2d(x, offset, weight, bias, stride=stride, padding=padding,
                                         dilation=dilation, mask=mask)


def _scalar_or_pair(value):
    """Upstream's DCNv2 stores stride/padding/dilation as one int; keep that form when both sides agree."""
    value = tuple(int(v) for v in value)
    return value[0] if value[0] == value[1] else list(value)


class ModulatedDeformConv2dFunction(Function):
    """The DCNv2 op as one autograd node, so ONNX export sees it whole (see ``symbolic``)."""

    @staticmethod
    def forward(ctx, x, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups):
        ctx.conf = (stride, padding, dilation, groups, deformable_groups)
        ctx.save_for_backward(x, offset, mask, weight, bias)
        return _compute(x, offset, mask, weight, bias, *ctx.conf)

    @staticmethod
    def backward(ctx, grad_out):
        # Recompute through the differentiable implementation; export/inference never gets here.
        inputs = [t.detach().requires_grad_(need) for t, need in zip(ctx.saved_tensors, ctx.needs_input_grad)]
        with torch.enable_grad():
            out = _compute(*inputs, *ctx.conf)
        wanted = [t for t in inputs if t.requires_grad]
        grads = iter(torch.autograd.grad(out, wanted, grad_out, allow_unused=True)) if wanted else iter(())
        return tuple(next(grads) if t.requires_grad else None for t in inputs) + (None,) * 5

    @staticmethod
    def symbolic(g, x, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups):
        w_sizes = _sizes(weight)
        if _export["op"] == "deformconv":
            attrs = dict(dilations_i=list(dilation), group_i=groups, offset_group_i=deformable_groups,
                         pads_i=[padding[0], padding[1], padding[0], padding[1]], strides_i=list(stride))
            if w_sizes and None not in w_sizes[2:]:
                attrs["kernel_shape_i"] = list(w_sizes[2:])
            out = g.op("DeformConv", x, weight, offset, bias, mask, **attrs)
        else:
            name = f"{_export['domain']}::DCNv2" if _export["domain"] else "DCNv2"
            out = g.op(name, x, offset, mask, weight, bias,
                       stride_i=_scalar_or_pair(stride), padding_i=_scalar_or_pair(padding),
                       dilation_i=_scalar_or_pair(dilation), groups_i=groups,
                       deformable_group_i=deformable_groups)
        _set_output_type(out, x, w_sizes, stride, padding, dilation)
        return out


def _sizes(value):
    try:
        return value.type().varyingSizes()
    except (RuntimeError, AttributeError):
        return None


def _set_output_type(out, x, w_sizes, stride, padding, dilation):
    """Give the custom node an output shape so ONNX shape inference continues past it (N, Cout, Ho, Wo)."""
    x_sizes = _sizes(x)
    if not x_sizes or len(x_sizes) != 4 or not w_sizes:
        return
    spatial = []
    for i in range(2):
        size, k = x_sizes[2 + i], w_sizes[2 + i]
        spatial.append(None if size is None or k is None else
                       (size + 2 * padding[i] - dilation[i] * (k - 1) - 1) // stride[i] + 1)
    out.setType(x.type().with_sizes([x_sizes[0], w_sizes[0], *spatial]))


def modulated_deform_conv2d(x, offset, mask, weight, bias=None, stride=1, padding=0, dilation=1,
                            groups=1, deformable_groups=1):
    """Functional DCNv2: out = sum_k w_k * mask_k * bilinear(x, p + p_k + offset_k) (+ bias)."""
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    if bias is None:  # the DCNv2 node and the plugin always take a bias input
        bias = weight.new_zeros(weight.shape[0])
    if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
        return ModulatedDeformConv2dFunction.apply(x, offset, mask, weight, bias, stride, padding, dilation,
                                                   int(groups), int(deformable_groups))
    # Eager: call the implementation directly so autograd is the library's own.
    return _compute(x, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups)


class ModulatedDeformConv2d(nn.Module):
    """DCNv2 layer taking offset and mask as inputs (mmcv's ``ModulatedDeformConv2d``).

    Positional order follows mmcv (..., dilation, groups, deform_groups, bias); upstream CenterNet passes
    ``deformable_groups=`` by keyword, which is accepted as a synonym of ``deform_groups``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 deform_groups=1, bias=True, *, deformable_groups=None):
        super().__init__()
        if deformable_groups is not None:
            deform_groups = deformable_groups
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels {in_channels} and out_channels {out_channels} "
                             f"must be divisible by groups {groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        self.groups, self.deform_groups = int(groups), int(deform_groups)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    @property
    def deformable_groups(self) -> int:  # upstream's attribute name
        return self.deform_groups

    def reset_parameters(self):
        # Upstream DCNv2 / mmcv init: U(-1/sqrt(n), 1/sqrt(n)) with n = in_channels * kh * kw, zero bias.
        n = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        stdv = 1.0 / math.sqrt(n)
        nn.init.uniform_(self.weight, -stdv, stdv)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x, offset, mask):
        return modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, self.stride, self.padding,
                                       self.dilation, self.groups, self.deform_groups)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, deform_groups={self.deform_groups}, bias={self.bias is not None}")


class ModulatedDeformConv2dPack(ModulatedDeformConv2d):
    """DCNv2 layer that predicts its own offset and mask (upstream's ``DCN``, mmcv's ``...Pack``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        kh, kw = self.kernel_size
        self.conv_offset_mask = nn.Conv2d(self.in_channels, self.deform_groups * 3 * kh * kw,
                                          kernel_size=self.kernel_size, stride=self.stride,
                                          padding=self.padding, dilation=self.dilation, bias=True)
        self.init_offset()

    def init_offset(self):
        # Zero init as upstream: training starts from a plain convolution (offset 0, mask 0.5).
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x):
        o1, o2, m = torch.chunk(self.conv_offset_mask(x), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        mask = torch.sigmoid(m)
        return modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, self.stride, self.padding,
                                       self.dilation, self.groups, self.deform_groups)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # mmcv names the offset/mask conv `conv_offset`; same layout, so only the key changes.
        for suffix in ("weight", "bias"):
            mmcv_key, our_key = f"{prefix}conv_offset.{suffix}", f"{prefix}conv_offset_mask.{suffix}"
            if mmcv_key in state_dict and our_key not in state_dict:
                state_dict[our_key] = state_dict.pop(mmcv_key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


ModulatedDeformConvPack = ModulatedDeformConv2dPack
