"""check_onnx: the DCNv2 -> DeformConv rewrite against torchvision (float64), and that a wrong ONNX fails.

The rewrite tests build one-node graphs by hand, so they need no upstream tree.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torchvision
from onnx import TensorProto, helper

from centernet_trt import check_onnx
from centernet_trt.errors import UserError


def _dcnv2_graph(x, offset, mask, weight, bias, stride, padding, dilation, dg, domain, opset, pair_attrs):
    attr = (lambda v: [v, v]) if pair_attrs else (lambda v: v)
    node = helper.make_node("DCNv2", ["x", "offset", "mask", "weight", "bias"], ["y"], domain=domain,
                            stride=attr(stride), padding=attr(padding), dilation=attr(dilation), groups=1,
                            deformable_group=dg)
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(t.shape))
              for n, t in (("x", x), ("offset", offset), ("mask", mask))]
    inits = [onnx.numpy_helper.from_array(weight, "weight"), onnx.numpy_helper.from_array(bias, "bias")]
    graph = helper.make_graph([node], "dcn", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=inits)
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=imports)


@pytest.mark.parametrize("stride,padding,dilation,dg,domain,opset,pair", [
    (1, 1, 1, 1, "centernet_trt", 19, False),   # CenterNet's DCN
    (2, 1, 1, 2, "centernet_trt", 17, True),    # strided, two offset groups, older opset, INTS attributes
    (1, 2, 2, 1, "", 19, False),                # dilated, the recipe's default-domain node
])
def test_rewrite_runs_dcnv2_like_torchvision(stride, padding, dilation, dg, domain, opset, pair):
    rng = np.random.default_rng(0)
    n, c, h, w, cout, k = 2, 4, 9, 11, 5, 3
    out_h = (h + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    out_w = (w + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    offset = (rng.standard_normal((n, 2 * dg * k * k, out_h, out_w)) * 2.0).astype(np.float32)  # a few px
    mask = rng.uniform(0, 1, (n, dg * k * k, out_h, out_w)).astype(np.float32)
    weight = rng.standard_normal((cout, c, k, k)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    model = _dcnv2_graph(x, offset, mask, weight, bias, stride, padding, dilation, dg, domain, opset, pair)

    runnable = check_onnx.ort_runnable(model)
    assert [nd.op_type for nd in runnable.graph.node] == ["DeformConv"]
    assert model.graph.node[0].op_type == "DCNv2"           # the caller's model is left alone
    import onnxruntime as ort
    sess = ort.InferenceSession(runnable.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x, "offset": offset, "mask": mask})[0]

    t = {k_: torch.from_numpy(v).double() for k_, v in
         dict(x=x, offset=offset, mask=mask, weight=weight, bias=bias).items()}
    ref = torchvision.ops.deform_conv2d(t["x"], t["offset"], t["weight"], t["bias"], stride=stride,
                                        padding=padding, dilation=dilation, mask=t["mask"]).numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)


def test_report_marks_failures():
    diffs = [check_onnx.OutputDiff("hm", (1, 80, 4, 4), 2e-6, 1e-7, True),
             check_onnx.OutputDiff("wh", (1, 2, 4, 4), 3e-3, 1e-3, False)]
    text = check_onnx.report(diffs)
    assert "FAIL" in text.splitlines()[-1] and "1/2" in text.splitlines()[-1]
    assert text.splitlines()[1].endswith("ok") and text.splitlines()[2].endswith("FAIL")


def test_not_our_onnx_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "plain.onnx"
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["y"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(SystemExit) as exc:
        check_onnx.main(["--onnx", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "make onnx" in err[0]
    with pytest.raises(UserError, match="not found"):
        check_onnx.metadata.read(tmp_path / "missing.onnx")
