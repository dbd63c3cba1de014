"""`python -m centernet_trt.engine`: what runs without TensorRT (argument checks, the one-line refusal,
the fp16 graph for strongly typed TensorRT 11) and, where TensorRT and a GPU exist, a real build."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from centernet_trt import engine, metadata
from centernet_trt.metadata import ModelMeta
from cli_runner import call_main  # tests/ is on sys.path under pytest's default import mode


def have_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def needs_trt(func):
    marks = [pytest.mark.tensorrt, pytest.mark.gpu,
             pytest.mark.skipif(not have_tensorrt(), reason="needs TensorRT and a CUDA GPU (pip install tensorrt, or docker/)")]
    for mark in marks:
        func = mark(func)
    return func


def small_graph(batch="N", dcn_node="DeformConv"):
    """Conv/BN/ReLU, a Resize (float-only scales), ConvTranspose, a deformable conv, Concat, 2 outputs:
    the op mix of CenterNet's resdcn/dla heads in a few KB."""
    rng = np.random.default_rng(0)
    t = lambda name, *shape, s=0.2: numpy_helper.from_array((rng.standard_normal(shape) * s).astype(np.float32), name)  # noqa: E731
    pos = lambda name, n: numpy_helper.from_array((np.abs(rng.standard_normal(n)) + 0.5).astype(np.float32), name)  # noqa: E731
    inits = [t("w1", 16, 3, 3, 3), t("b1", 16), pos("g", 16), t("beta", 16), t("mu", 16), pos("var", 16),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"), t("wup", 16, 8, 4, 4),
             t("woff", 27, 8, 3, 3, s=0.05), t("wd", 8, 8, 3, 3), t("bd", 8)]
    if dcn_node == "DeformConv":
        dcn = helper.make_node("DeformConv", ["up", "wd", "off", "bd", "mask"], ["dc"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    else:  # our DCNv2 custom op, as the export writes it
        dcn = helper.make_node("DCNv2", ["up", "off", "mask", "wd", "bd"], ["dc"], domain="centernet_trt",
                               stride=1, padding=1, dilation=1, groups=1, deformable_group=1)
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "beta", "mu", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("Resize", ["r", "", "scales"], ["rs"], mode="nearest"),
        helper.make_node("ConvTranspose", ["r", "wup"], ["up"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["up", "woff"], ["om"], pads=[1, 1, 1, 1]),
        helper.make_node("Slice", ["om", "s0", "s18", "ax1"], ["off"]),
        helper.make_node("Slice", ["om", "s18", "s27", "ax1"], ["m"]),
        helper.make_node("Sigmoid", ["m"], ["mask"]),
        dcn,
        helper.make_node("Concat", ["dc", "rs"], ["cat"], axis=1),
        helper.make_node("Relu", ["cat"], ["hm"]),
    ]
    inits += [numpy_helper.from_array(np.array([v], np.int64), n) for n, v in (("s0", 0), ("s18", 18), ("s27", 27), ("ax1", 1))]
    g = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 32, 32])],
                          [helper.make_tensor_value_info("hm", TensorProto.FLOAT, [batch, 24, 32, 32]),
                           helper.make_tensor_value_info("dc", TensorProto.FLOAT, [batch, 8, 32, 32])], inits)
    opsets = [helper.make_opsetid("", 19)] + ([helper.make_opsetid("centernet_trt", 1)] if dcn_node != "DeformConv" else [])
    model = helper.make_model(g, opset_imports=opsets)
    metadata.attach(model, ModelMeta(arch="small", task="ctdet", heads=[("hm", 24), ("dc", 8)], input_h=32, input_w=32,
                                     mean=[0.4] * 3, std=[0.3] * 3, num_classes=24,
                                     batch="dynamic" if batch == "N" else str(batch),
                                     dcn_op="deformconv" if dcn_node == "DeformConv" else "dcnv2"))
    return model


def run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x})))


def test_fp16_graph_matches_fp32_within_fp16_tolerance():
    fp32 = small_graph()
    fp16 = engine.to_fp16(fp32)
    onnx.checker.check_model(fp16)
    # I/O stay fp32; weights become fp16 except the float-only Resize scales.
    assert [i.type.tensor_type.elem_type for i in fp16.graph.input] == [TensorProto.FLOAT]
    assert {o.type.tensor_type.elem_type for o in fp16.graph.output} == {TensorProto.FLOAT}
    types = {t.name: t.data_type for t in fp16.graph.initializer}
    assert types["scales"] == TensorProto.FLOAT and types["wd"] == types["w1"] == TensorProto.FLOAT16
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    ref, got = run(fp32, x), run(fp16, x)
    for name in ("hm", "dc"):
        assert got[name].dtype == np.float32
        scale = np.abs(ref[name]).max()
        err = np.abs(got[name] - ref[name]).max()
        assert 0 < err <= 1e-2 * scale, (name, err, scale)   # really fp16 (not a copy), and close


def test_fp16_graph_of_a_real_export(tmp_path, patched_tree):
    export = pytest.importorskip("centernet_trt.export", reason="the export step (centernet_trt.export) is not in this tree")
    path = tmp_path / "m.onnx"
    export.main(["--arch", "resdcn_18", "--task", "ctdet", "--model", "random", "--input", "128",
                 "--dcn-op", "deformconv", "--tree", str(patched_tree), "--output", str(path)])
    fp32 = onnx.load(str(path))
    fp16 = engine.to_fp16(fp32)
    x = np.random.default_rng(2).standard_normal((1, 3, 128, 128)).astype(np.float32)
    ref, got = run(fp32, x), run(fp16, x)
    for name in metadata.read(fp32).head_names:
        scale = np.abs(ref[name]).max()
        assert np.abs(got[name] - ref[name]).max() <= 2e-2 * scale, name


@pytest.mark.parametrize("text,expected", [("4", (4, 4, 4)), ("1:4:8", (1, 4, 8)), (None, None)])
def test_parse_batch(text, expected):
    assert engine.parse_batch(text) == expected


@pytest.mark.parametrize("text", ["0", "8:4:1", "1:2", "a:b:c"])
def test_parse_batch_rejects(text):
    with pytest.raises(engine.UserError, match="min:opt:max"):
        engine.parse_batch(text)


def test_trtexec_command_mirrors_the_build():
    cmd = engine.trtexec_command("m.onnx", "m.engine", "lib.so", "fp16", "flag", "input", (512, 512), (1, 4, 8), 4096)
    assert cmd.split() == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine", "--dynamicPlugins=lib.so", "--fp16",
                           "--minShapes=input:1x3x512x512", "--optShapes=input:4x3x512x512",
                           "--maxShapes=input:8x3x512x512", "--memPoolSize=workspace:4096M"]
    assert "--stronglyTyped" in engine.trtexec_command("m.fp16.onnx", "e", None, "fp16", "graph", "input", (8, 8), (1, 1, 1), 64)


def cli(capsys, argv):
    """(exit code, non-empty stderr lines) of the engine CLI."""
    code, _, err = call_main(engine.main, argv, capsys)
    return code, [line for line in err.splitlines() if line.strip()]


@pytest.mark.skipif(have_tensorrt(), reason="checks the refusal on machines without TensorRT")
def test_without_tensorrt_one_line_and_nothing_written(tmp_path, capsys):
    onnx.save(small_graph(dcn_node="DCNv2"), str(tmp_path / "m.onnx"))
    (tmp_path / "libdcnv2_plugin.so").write_bytes(b"\x7fELF")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, lines = cli(capsys, ["--onnx", str(tmp_path / "m.onnx"), "--plugin", str(tmp_path / "libdcnv2_plugin.so"),
                               "--precision", "fp16", "--batch", "1:2:4", "--output", str(tmp_path / "m.engine")])
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("error: TensorRT is not installed") and "pip install tensorrt" in lines[0] and "docker/" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_dcnv2_onnx_needs_the_plugin(tmp_path, capsys):
    onnx.save(small_graph(dcn_node="DCNv2"), str(tmp_path / "m.onnx"))
    code, lines = cli(capsys, ["--onnx", str(tmp_path / "m.onnx"), "--output", str(tmp_path / "m.engine")])
    assert code == 2 and len(lines) == 1 and "DCNv2" in lines[0] and "make plugin" in lines[0]
    code, lines = cli(capsys, ["--onnx", str(tmp_path / "m.onnx"), "--plugin", str(tmp_path / "none.so")])
    assert code == 2 and "none.so not found" in lines[0]


def test_fixed_batch_onnx_refuses_a_batch_range(tmp_path, capsys):
    onnx.save(small_graph(batch=1), str(tmp_path / "m.onnx"))
    code, lines = cli(capsys, ["--onnx", str(tmp_path / "m.onnx"), "--batch", "1:4:8"])
    assert code == 2 and len(lines) == 1 and "fixed batch of 1" in lines[0] and "BATCH=dynamic" in lines[0]


def test_onnx_without_metadata(tmp_path, capsys):
    model = small_graph()
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "m.onnx"))
    code, lines = cli(capsys, ["--onnx", str(tmp_path / "m.onnx")])
    assert code == 2 and len(lines) == 1 and "no centernet-trt metadata" in lines[0]
    assert not list(tmp_path.glob("*.engine"))


@needs_trt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_real_engine(tmp_path, precision):
    onnx.save(small_graph(), str(tmp_path / "m.onnx"))
    out = tmp_path / f"m_{precision}.engine"
    engine.main(["--onnx", str(tmp_path / "m.onnx"), "--precision", precision, "--batch", "1:2:4", "--output", str(out)])
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["precision"] == precision and side["batch"] == {"min": 1, "opt": 2, "max": 4}
    from centernet_trt.backends import OnnxRuntimeBackend, TensorRTBackend

    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    ref, got = OnnxRuntimeBackend(tmp_path / "m.onnx").run(x), TensorRTBackend(out).run(x)
    tol = 1e-3 if precision == "fp32" else 2e-2
    for name in ref:
        np.testing.assert_allclose(got[name], ref[name], atol=tol * np.abs(ref[name]).max(), rtol=tol)


def test_trtexec_command_fixed_batch_and_fp32():
    cmd = engine.trtexec_command("m.onnx", "m.engine", None, "fp32", "none", "input", (512, 512), (1, 1, 1), 1024,
                                 dynamic=False)
    assert cmd.split() == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine", "--noTF32",
                           "--memPoolSize=workspace:1024M"]


@pytest.mark.skipif(have_tensorrt(), reason="checks the refusal on machines without TensorRT")
def test_deformconv_onnx_ignores_the_plugin(tmp_path, capsys):
    """`make engine` always passes PLUGIN; a DeformConv export must not need it built."""
    onnx.save(small_graph(), str(tmp_path / "m.onnx"))
    code, lines = cli(capsys, ["--onnx", str(tmp_path / "m.onnx"), "--plugin", str(tmp_path / "none.so")])
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: TensorRT is not installed"), lines


# --- dynamic H/W (make onnx INPUT=dynamic): the profile covers the input size too -----------------

def dynamic_hw_graph():
    model = small_graph()
    for v in [*model.graph.input, *model.graph.output]:
        dims = v.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = ("height", "width") if v.name == "input" else ("height/4", "width/4")
    meta = metadata.read(model)
    meta.input_h, meta.input_w = 256, 192
    meta.extra.update(dynamic_hw=True, stride=32)
    metadata.attach(model, meta)
    return model


@pytest.mark.parametrize("text,expected", [("512x512", ((512, 512),) * 3), ("256", ((256, 256),) * 3),
                                           ("128x256:512x512:1024x768", ((128, 256), (512, 512), (1024, 768))),
                                           (None, None)])
def test_parse_hw(text, expected):
    assert engine.parse_hw(text) == expected


@pytest.mark.parametrize("text", ["0x5", "512x512:256x256:1024x1024", "1x2:3x4", "big", "128x1024:256x512:512x512"])
def test_parse_hw_rejects(text):
    with pytest.raises(engine.UserError, match="min:opt:max"):
        engine.parse_hw(text)


def test_hw_profile_defaults_and_checks():
    meta = metadata.read(dynamic_hw_graph())
    dyn = [None, 3, None, None]
    assert engine.hw_profile(dyn, meta, None) == ((128, 128), (256, 192), (1024, 1024))
    meta.input_h = 96   # a default size below 128 stays inside its own profile
    assert engine.hw_profile(dyn, meta, None) == ((96, 128), (96, 192), (1024, 1024))
    hw = engine.parse_hw("256x256:512x512:1024x1024")
    assert engine.hw_profile(dyn, meta, hw) == hw
    with pytest.raises(engine.UserError, match="100x100.*multiples of .*stride 32"):
        engine.hw_profile(dyn, meta, engine.parse_hw("100x100:512x512:1024x1024"))
    assert engine.hw_profile([1, 3, 512, 512], meta, None) == ((512, 512),) * 3
    with pytest.raises(engine.UserError, match="fixed input size 512x512.*INPUT=dynamic"):
        engine.hw_profile([1, 3, 512, 512], meta, hw)


def test_trtexec_command_with_hw_profile():
    hws = ((128, 128), (512, 384), (1024, 1024))
    cmd = engine.trtexec_command("m.onnx", "m.engine", "lib.so", "fp32", "none", "input", hws, (1, 1, 1), 4096)
    assert cmd.split()[4:] == ["--noTF32", "--minShapes=input:1x3x128x128", "--optShapes=input:1x3x512x384",
                               "--maxShapes=input:1x3x1024x1024", "--memPoolSize=workspace:4096M"]


def test_hw_errors_before_tensorrt(tmp_path, capsys):
    onnx.save(dynamic_hw_graph(), str(tmp_path / "dyn.onnx"))
    code, lines = cli(capsys, ["--onnx", str(tmp_path / "dyn.onnx"), "--hw", "64x64:250x250:512x512"])
    assert code == 2 and len(lines) == 1 and "stride 32" in lines[0], lines
    onnx.save(small_graph(), str(tmp_path / "fixed.onnx"))
    code, lines = cli(capsys, ["--onnx", str(tmp_path / "fixed.onnx"), "--hw", "256x256:512x512:1024x1024"])
    assert code == 2 and len(lines) == 1 and "make onnx INPUT=dynamic" in lines[0], lines
    assert not list(tmp_path.glob("*.engine"))


@needs_trt
def test_build_real_dynamic_hw_engine(tmp_path):
    onnx.save(dynamic_hw_graph(), str(tmp_path / "m.onnx"))
    out = tmp_path / "m_fp32.engine"
    engine.main(["--onnx", str(tmp_path / "m.onnx"), "--precision", "fp32", "--batch", "1:1:2",
                 "--hw", "32x32:64x96:128x128", "--output", str(out)])
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["hw"] == {"min": [32, 32], "opt": [64, 96], "max": [128, 128]}
    from centernet_trt.backends import OnnxRuntimeBackend, TensorRTBackend

    trt_backend = TensorRTBackend(out)
    for hw in ((32, 64), (128, 96)):
        x = np.random.default_rng(0).standard_normal((1, 3, *hw)).astype(np.float32)
        ref, got = OnnxRuntimeBackend(tmp_path / "m.onnx").run(x), trt_backend.run(x)
        for name in ref:
            np.testing.assert_allclose(got[name], ref[name], atol=1e-3 * np.abs(ref[name]).max(), rtol=1e-3)
