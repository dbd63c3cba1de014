"""The overlay DCN against an independent float64 reference of DCNv2, its module API, and its ONNX symbolic.

Imported straight from ``overlay/`` so these tests need no upstream tree.
"""
from __future__ import annotations

import importlib.util
import io
import sys
import warnings

import numpy as np
import pytest
import torch

from centernet_trt import upstream

DCN_DIR = upstream.PROJECT_ROOT / "overlay" / "src" / "lib" / "models" / "networks" / "dcn"


@pytest.fixture(scope="module")
def dcn():
    spec = importlib.util.spec_from_file_location("overlay_dcn", DCN_DIR / "__init__.py",
                                                  submodule_search_locations=[str(DCN_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["overlay_dcn"] = module  # its relative import needs the package registered
    spec.loader.exec_module(module)
    yield module
    for name in [n for n in sys.modules if n == "overlay_dcn" or n.startswith("overlay_dcn.")]:
        del sys.modules[name]


# ------------------------------------------------------------------ independent reference
def _bilinear_zero_outside(img: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """DCNv2's sampling: bilinear between the 4 neighbours, a neighbour outside the image counts as 0."""
    h, w = img.shape
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    out = np.zeros_like(y, dtype=np.float64)
    for dy in (0, 1):
        for dx in (0, 1):
            yy, xx = y0 + dy, x0 + dx
            weight = (1 - np.abs(y - yy)) * (1 - np.abs(x - xx))
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            out += np.where(inside, weight * img[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)], 0.0)
    return out


def reference_dcnv2(x, offset, mask, weight, bias, stride, padding, dilation, deformable_groups):
    """out[n,o,i,j] = b[o] + sum_{c,k} w[o,c,k] * mask[n,g,k,i,j] * x[n,c](p_ij + p_k + offset[n,g,k,:,i,j])

    offset channels per deformable group g and tap k: (dy, dx) at 2*(g*K + k) and 2*(g*K + k) + 1.
    """
    x, offset, mask, weight, bias = (np.asarray(t, dtype=np.float64) for t in (x, offset, mask, weight, bias))
    n_batch, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    taps = kh * kw
    out_h = (height + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    out_w = (width + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    per_group = channels // deformable_groups
    base_y = (np.arange(out_h) * stride - padding)[:, None] * np.ones((1, out_w))
    base_x = np.ones((out_h, 1)) * (np.arange(out_w) * stride - padding)[None, :]
    cols = np.zeros((n_batch, channels, taps, out_h, out_w))
    for n in range(n_batch):
        for c in range(channels):
            g = c // per_group
            for k in range(taps):
                ki, kj = divmod(k, kw)
                dy = offset[n, 2 * (g * taps + k)]
                dx = offset[n, 2 * (g * taps + k) + 1]
                sampled = _bilinear_zero_outside(x[n, c], base_y + ki * dilation + dy, base_x + kj * dilation + dx)
                cols[n, c, k] = sampled * mask[n, g * taps + k]
    out = np.einsum("ock,nckij->noij", weight.reshape(out_channels, channels, taps), cols)
    return out + bias[None, :, None, None]


def _random_case(dtype, dg, stride, seed=0, channels=4, size=7, out_channels=3):
    gen = torch.Generator().manual_seed(seed)
    out_size = (size + 2 - 2 - 1) // stride + 1
    x = torch.randn(2, channels, size, size, generator=gen, dtype=torch.float64)
    # fractional offsets, some pushing samples well outside the image
    offset = torch.randn(2, 2 * dg * 9, out_size, out_size, generator=gen, dtype=torch.float64) * 1.5
    offset[:, ::5] += 6.0 * torch.sign(torch.randn(offset[:, ::5].shape, generator=gen, dtype=torch.float64))
    mask = torch.rand(2, dg * 9, out_size, out_size, generator=gen, dtype=torch.float64)
    weight = torch.randn(out_channels, channels, 3, 3, generator=gen, dtype=torch.float64)
    bias = torch.randn(out_channels, generator=gen, dtype=torch.float64)
    return [t.to(dtype) for t in (x, offset, mask, weight, bias)]


def _rel_err(actual, expected) -> float:
    return float(np.abs(np.asarray(actual, np.float64) - expected).max() / np.abs(expected).max())


def test_reference_samples_outside_as_zero():
    # sanity of the reference itself: a sample shifted fully outside reads 0, half a pixel reads the mean
    img = np.arange(9, dtype=np.float64).reshape(3, 3)
    assert _bilinear_zero_outside(img, np.array([-1.0, 5.0]), np.array([0.0, 0.0])).tolist() == [0.0, 0.0]
    assert _bilinear_zero_outside(img, np.array([0.5]), np.array([0.0]))[0] == pytest.approx(1.5)
    assert _bilinear_zero_outside(img, np.array([-0.5]), np.array([0.0]))[0] == pytest.approx(0.0 * 0.5 + 0.5 * 0)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-6), (torch.float32, 1e-5)])
@pytest.mark.parametrize("dg", [1, 2])
@pytest.mark.parametrize("stride", [1, 2])
def test_functional_matches_float64_reference(dcn, dtype, tol, dg, stride):
    x, offset, mask, weight, bias = _random_case(dtype, dg, stride, seed=dg * 10 + stride)
    out = dcn.modulated_deform_conv2d(x, offset, mask, weight, bias, stride=stride, padding=1, dilation=1,
                                      deformable_groups=dg)
    ref = reference_dcnv2(*(t.double().numpy() for t in (x, offset, mask, weight, bias)), stride=stride,
                          padding=1, dilation=1, deformable_groups=dg)
    assert out.shape == ref.shape
    assert _rel_err(out.detach().numpy(), ref) < tol


def test_pack_offset_and_mask_layout_match_upstream(dcn):
    """chunk(3) -> offset = cat(o1, o2), mask = sigmoid(m), checked against the reference with that wiring."""
    torch.manual_seed(1)
    layer = dcn.ModulatedDeformConvPack(4, 3, kernel_size=(3, 3), stride=1, padding=1, dilation=1,
                                        deformable_groups=2).double()
    torch.nn.init.normal_(layer.conv_offset_mask.weight, std=0.5)
    torch.nn.init.normal_(layer.conv_offset_mask.bias, std=1.0)
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    raw = torch.nn.functional.conv2d(x, layer.conv_offset_mask.weight, layer.conv_offset_mask.bias,
                                     padding=1).detach().numpy()
    third = raw.shape[1] // 3
    offset = np.concatenate([raw[:, :third], raw[:, third:2 * third]], axis=1)
    mask = 1.0 / (1.0 + np.exp(-raw[:, 2 * third:]))
    ref = reference_dcnv2(x.numpy(), offset, mask, layer.weight.detach().numpy(), layer.bias.detach().numpy(),
                          stride=1, padding=1, dilation=1, deformable_groups=2)
    assert _rel_err(layer(x).detach().numpy(), ref) < 1e-6


def test_upstream_constructor_params_and_zero_init(dcn):
    layer = dcn.ModulatedDeformConvPack(8, 16, kernel_size=(3, 3), stride=1, padding=1, dilation=1,
                                        deformable_groups=1)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert shapes == {"weight": (16, 8, 3, 3), "bias": (16,), "conv_offset_mask.weight": (27, 8, 3, 3),
                      "conv_offset_mask.bias": (27,)}
    assert layer.deformable_groups == 1
    # zero-initialised offset conv: offsets 0 and mask 0.5, so the layer is 0.5 * a plain convolution
    x = torch.randn(1, 8, 9, 9)
    plain = torch.nn.functional.conv2d(x, layer.weight, None, padding=1) * 0.5 + layer.bias[None, :, None, None]
    torch.testing.assert_close(layer(x), plain, rtol=1e-5, atol=1e-5)


def test_mmcv_state_dict_keys_load(dcn):
    src = dcn.ModulatedDeformConvPack(4, 4, 3, padding=1, deform_groups=2)
    torch.nn.init.normal_(src.conv_offset_mask.weight)
    mmcv_style = {k.replace("conv_offset_mask.", "conv_offset."): v for k, v in src.state_dict().items()}
    assert "conv_offset.weight" in mmcv_style
    dst = dcn.ModulatedDeformConvPack(4, 4, 3, padding=1, deform_groups=2)
    result = dst.load_state_dict(mmcv_style, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    torch.testing.assert_close(dst.conv_offset_mask.weight, src.conv_offset_mask.weight)


def test_export_function_gradients_equal_eager(dcn):
    x, offset, mask, weight, bias = (t.requires_grad_() for t in _random_case(torch.float64, 2, 1, seed=5))
    args = ((1, 1), (1, 1), (1, 1), 1, 2)
    out_fn = dcn.ModulatedDeformConv2dFunction.apply(x, offset, mask, weight, bias, *args)
    grads_fn = torch.autograd.grad(out_fn.sum(), (x, offset, mask, weight, bias))
    out_eager = dcn.modulated_deform_conv2d(x, offset, mask, weight, bias, 1, 1, 1, 1, 2)
    grads_eager = torch.autograd.grad(out_eager.sum(), (x, offset, mask, weight, bias))
    torch.testing.assert_close(out_fn, out_eager)
    for a, b in zip(grads_fn, grads_eager):
        torch.testing.assert_close(a, b)


def test_mmcv_backend_needs_mmcv(dcn):
    pytest.importorskip("torch")
    try:
        import mmcv.ops  # noqa: F401
        pytest.skip("mmcv.ops is installed; the error path is not reachable")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="mmcv"):
        dcn.set_backend("mmcv")
    assert dcn.get_backend() == "torchvision"


# ------------------------------------------------------------------ ONNX symbolic
def _export(dcn, module, x, op, domain, opset):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with dcn.onnx_export_mode(op, domain):
            torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=opset, input_names=["input"],
                              output_names=["out"])
    import onnx

    return onnx.load_from_string(buf.getvalue()), buf.getvalue()


def _producer(model, name):
    return next((n for n in model.graph.node if name in n.output), None)


@pytest.mark.parametrize("domain", ["centernet_trt", ""])
@pytest.mark.parametrize("stride,dg", [(1, 1), (2, 2)])
def test_symbolic_emits_dcnv2(dcn, domain, stride, dg):
    import onnx

    layer = dcn.ModulatedDeformConvPack(4, 6, kernel_size=(3, 3), stride=stride, padding=1, dilation=1,
                                        deformable_groups=dg).eval()
    model, _ = _export(dcn, layer, torch.randn(1, 4, 16, 16), "dcnv2", domain, 17)
    nodes = [n for n in model.graph.node if n.op_type == "DCNv2"]
    assert len(nodes) == 1
    node = nodes[0]
    assert node.domain == domain
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"stride": stride, "padding": 1, "dilation": 1, "groups": 1, "deformable_group": dg}
    assert all(a.type == onnx.AttributeProto.INT for a in node.attribute)
    x_in, offset_in, mask_in, weight_in, bias_in = node.input
    assert x_in == "input"
    assert _producer(model, offset_in).op_type == "Concat"    # cat(o1, o2)
    assert _producer(model, mask_in).op_type == "Sigmoid"     # sigmoid(m)
    inits = {i.name: tuple(i.dims) for i in model.graph.initializer}
    assert inits[weight_in] == (6, 4, 3, 3) and inits[bias_in] == (6,)
    if domain:
        assert {(o.domain, o.version) for o in model.opset_import} >= {(domain, 1)}
        onnx.checker.check_model(model)
        # the symbolic declares the output shape, so shape inference continues past the custom node
        out_dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
        assert out_dims == [1, 6, 16 // stride, 16 // stride]


def test_symbolic_emits_deformconv_that_onnxruntime_runs(dcn):
    import onnx
    import onnxruntime as ort

    torch.manual_seed(3)
    layer = dcn.ModulatedDeformConvPack(4, 6, kernel_size=(3, 3), stride=2, padding=1, deformable_groups=2).eval()
    torch.nn.init.normal_(layer.conv_offset_mask.weight, std=0.3)
    x = torch.randn(1, 4, 16, 16)
    model, raw = _export(dcn, layer, x, "deformconv", "", 19)
    node = next(n for n in model.graph.node if n.op_type == "DeformConv")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert node.domain == "" and attrs == {"dilations": [1, 1], "group": 1, "kernel_shape": [3, 3],
                                           "offset_group": 2, "pads": [1, 1, 1, 1], "strides": [2, 2]}
    assert _producer(model, node.input[2]).op_type == "Concat" and _producer(model, node.input[4]).op_type == "Sigmoid"
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = layer(x).numpy()
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-5


def test_export_mode_is_restored_and_validated(dcn):
    with pytest.raises(ValueError):
        with dcn.onnx_export_mode("nope"):
            pass
    from importlib import import_module

    state = import_module("overlay_dcn.modulated_deform_conv")._export
    with dcn.onnx_export_mode("deformconv", ""):
        assert state == {"op": "deformconv", "domain": ""}
    assert state == {"op": "dcnv2", "domain": "centernet_trt"}


# ------------------------------------------------------------------ CUDA (run on a GPU machine)
@pytest.mark.gpu
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-6), (torch.float32, 1e-5)])
@pytest.mark.parametrize("dg,stride", [(1, 1), (2, 2)])
def test_cuda_matches_float64_reference(dcn, dtype, tol, dg, stride):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torchvision's CUDA deform_conv2d)")
    x, offset, mask, weight, bias = _random_case(dtype, dg, stride, seed=7 + dg + stride)
    out = dcn.modulated_deform_conv2d(*(t.cuda() for t in (x, offset, mask, weight, bias)), stride=stride,
                                      padding=1, dilation=1, deformable_groups=dg)
    assert out.is_cuda
    ref = reference_dcnv2(*(t.double().numpy() for t in (x, offset, mask, weight, bias)), stride=stride,
                          padding=1, dilation=1, deformable_groups=dg)
    assert _rel_err(out.cpu().numpy(), ref) < tol
