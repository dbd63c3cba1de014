"""Export every arch x task, check it in ONNX Runtime against PyTorch, and refuse bad input cleanly.

The matrix runs at 128x128 (hourglass needs multiples of 128). Each PyTorch model is built once per
(arch, task) and exported in every batch/DCN mode from that build.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
import torch

from centernet_trt import check_onnx, export, heads, metadata, upstream

HW = (128, 128)
NO_DCN = {"res_18", "dlav0_34", "hourglass"}   # these export the same graph in both DCN modes
EXPECTED_HEADS = {
    "ctdet": [("hm", 80), ("reg", 2), ("wh", 2)],
    "multi_pose": [("hm", 1), ("wh", 2), ("hps", 34), ("reg", 2), ("hm_hp", 17), ("hp_offset", 2)],
}
EXPECTED_DCN = {"dla_34": 16, "resdcn_18": 3, "resdcn_101": 3}


class _OneModel:
    """Keeps only the latest prepared model: the matrix walks (arch, task) in order, and two hourglass
    builds (~0.8 GB each) need not coexist."""

    def __init__(self, tree):
        self.tree, self.key, self.prep = tree, None, None
        self.seconds = {}

    def get(self, arch, task):
        if self.key != (arch, task):
            self.prep = None
            start = time.perf_counter()
            self.prep = export.prepare(arch, task, "random", input_hw=HW, tree=self.tree, quiet=True)
            self.key = (arch, task)
            self.seconds[self.key] = time.perf_counter() - start
        return self.prep


@pytest.fixture(scope="session")
def models(patched_tree):
    cache = _OneModel(patched_tree)
    yield cache
    cache.prep = None


@pytest.mark.parametrize("dcn_op", export.DCN_OPS)
@pytest.mark.parametrize("batch", ["1", "dynamic"])
@pytest.mark.parametrize("task", heads.TASKS)
@pytest.mark.parametrize("arch", heads.ARCHS)
def test_export_matches_pytorch(models, arch, task, batch, dcn_op):
    if arch in NO_DCN and dcn_op == "deformconv":
        pytest.skip(f"{arch} has no DCN layer: both modes give one graph (test_dcn_mode_irrelevant_without_dcn)")
    prep = models.get(arch, task)
    model = export.to_onnx(prep, batch=batch, dcn_op=dcn_op)

    meta = metadata.read(model)
    assert (meta.arch, meta.task, meta.batch, meta.opset) == (arch, task, batch, 19)
    assert [tuple(h) for h in meta.heads] == EXPECTED_HEADS[task]
    assert (meta.input_h, meta.input_w, meta.down_ratio) == (*HW, 4)
    assert meta.mean == [0.408, 0.447, 0.47] and meta.std == [0.289, 0.274, 0.278]
    assert meta.random_weights and meta.checkpoint == "random" and meta.extra["weights_sha256"]
    assert meta.upstream_commit == upstream.PINNED_COMMIT
    assert meta.extra["head_conv"] == (256 if "dla" in arch else 64)
    assert meta.extra["stride"] == (128 if arch == "hourglass" else 32)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == [n for n, _ in EXPECTED_HEADS[task]]

    n_dcn = EXPECTED_DCN.get(arch, 0)
    op_type = {"dcnv2": "DCNv2", "deformconv": "DeformConv"}[dcn_op]
    nodes = [nd for nd in model.graph.node if nd.op_type == op_type]
    assert len(nodes) == n_dcn and meta.dcn_op == (dcn_op if n_dcn else "none")
    if n_dcn and dcn_op == "dcnv2":
        assert {nd.domain for nd in nodes} == {"centernet_trt"}
        assert {a.name for a in nodes[0].attribute} == {"stride", "padding", "dilation", "groups",
                                                          "deformable_group"}
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert (dim0.dim_param == "batch") if batch == "dynamic" else (dim0.dim_value == 1)

    n = 2 if batch == "dynamic" else 1
    x = np.random.default_rng(hash((arch, task, batch, dcn_op)) % 2**32).standard_normal(
        (n, 3, *HW)).astype(np.float32)
    diffs = check_onnx.compare(model, prep.net, x)
    assert [d.shape for d in diffs] == [(n, c, HW[0] // 4, HW[1] // 4) for _, c in EXPECTED_HEADS[task]]
    assert all(d.ok for d in diffs), check_onnx.report(diffs)


def test_dcn_mode_irrelevant_without_dcn(models):
    prep = models.get("res_18", "ctdet")
    a, b = (export.to_onnx(prep, dcn_op=op) for op in export.DCN_OPS)
    for m in (a, b):
        del m.metadata_props[:]
    assert a.graph == b.graph


@pytest.fixture(scope="module")
def resdcn(models):
    return models.get("resdcn_18", "ctdet")


def test_recipe_default_domain_form(resdcn):
    model = export.to_onnx(resdcn, dcn_op="dcnv2", dcn_domain="")
    dcn = [nd for nd in model.graph.node if nd.op_type == "DCNv2"]
    assert len(dcn) == 3 and {nd.domain for nd in dcn} == {""}
    assert {o.domain for o in model.opset_import} == {""}
    attrs = {a.name: a.i for a in dcn[0].attribute}
    assert attrs == {"stride": 1, "padding": 1, "dilation": 1, "groups": 1, "deformable_group": 1}
    assert [*dcn[0].input[:1]] and len(dcn[0].input) == 5        # input, offset, mask, weight, bias
    with pytest.raises(onnx.checker.ValidationError):            # why the custom domain is the default
        onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(3).standard_normal((1, 3, *HW)).astype(np.float32)
    assert all(d.ok for d in check_onnx.compare(model, resdcn.net, x))


def test_slim_does_not_change_outputs(resdcn):
    import onnxruntime as ort

    x = np.random.default_rng(4).standard_normal((2, 3, *HW)).astype(np.float32)
    outs = []
    for slim in (False, True):
        model = export.to_onnx(resdcn, batch="dynamic", dcn_op="dcnv2", slim=slim)
        assert metadata.read(model).extra["slim"] is slim
        assert sum(nd.op_type == "DCNv2" for nd in model.graph.node) == 3
        sess = ort.InferenceSession(check_onnx.ort_runnable(model).SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, {"input": x}))
        assert all(d.ok for d in check_onnx.compare(model, resdcn.net, x))
    for plain, slimmed in zip(*outs):
        np.testing.assert_allclose(slimmed, plain, rtol=0, atol=1e-5)


def test_dcnv2_rewrite_equals_deformconv_export(resdcn):
    import onnxruntime as ort

    x = np.random.default_rng(5).standard_normal((1, 3, *HW)).astype(np.float32)
    res = []
    for op in export.DCN_OPS:
        m = check_onnx.ort_runnable(export.to_onnx(resdcn, dcn_op=op))
        res.append(ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x}))
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


def test_check_fails_on_a_wrong_weight(resdcn):
    model = export.to_onnx(resdcn, dcn_op="deformconv")
    init = next(i for i in model.graph.initializer if "conv_offset_mask.weight" in i.name)
    arr = onnx.numpy_helper.to_array(init).copy()
    arr.flat[0] += 1e-2
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    x = np.random.default_rng(6).standard_normal((1, 3, *HW)).astype(np.float32)
    assert not all(d.ok for d in check_onnx.compare(model, resdcn.net, x))


def test_num_classes_option(models, patched_tree):
    prep = export.prepare("res_18", "ctdet", "random", num_classes=20, input_hw=HW, tree=patched_tree, quiet=True)
    meta = metadata.read(export.to_onnx(prep))
    assert meta.num_classes == 20 and meta.heads[0] == ("hm", 20)


# ------------------------------------------------------------------ the CLIs, as `make` runs them
def _run(module, *args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", f"centernet_trt.{module}", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, cwd=cwd or upstream.PROJECT_ROOT,
                          timeout=600)


@pytest.fixture(scope="module")
def upstream_ckpt(models, tmp_path_factory):
    """A resdcn_18 ctdet checkpoint with 20 classes, saved as upstream's save_model does (DataParallel)."""
    prep = export.prepare("resdcn_18", "ctdet", "random", num_classes=20, input_hw=HW, seed=7,
                          tree=models.tree, quiet=True)
    path = tmp_path_factory.mktemp("ckpt") / "ctdet_pascal_resdcn18.pth"
    torch.save({"epoch": 70, "state_dict": {f"module.{k}": v for k, v in prep.model.state_dict().items()}}, path)
    return path, prep.weights_sha256


def test_cli_export_then_check(patched_tree, tmp_path):
    out = tmp_path / "sub" / "ctdet_resdcn_18.onnx"
    env = {"CENTERNET_TREE": str(patched_tree)}
    r = _run("export", "--arch", "resdcn_18", "--model", "random", "--input", "128x128", "--output", out, env=env)
    assert r.returncode == 0, r.stderr
    assert "warning: MODEL=random" in r.stderr and f"wrote {out}" in r.stdout
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask                # an ordinary file, not mkstemp's 0600
    assert [p.name for p in out.parent.iterdir()] == [out.name]          # no temporary left behind
    meta = metadata.read(out)
    assert meta.random_weights and meta.extra["random_seed"] == 0 and meta.dcn_op == "dcnv2"
    r = _run("check_onnx", "--onnx", out, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout and "DCN sampling: 3 layers" in r.stdout and "digest matches" in r.stdout


def test_cli_checkpoint_export_then_check(patched_tree, upstream_ckpt, tmp_path):
    path, digest = upstream_ckpt
    out = tmp_path / "pascal.onnx"
    env = {"CENTERNET_TREE": str(patched_tree)}
    r = _run("export", "--arch", "resdcn_18", "--model", path, "--input", "128", "--batch", "dynamic",
             "--dcn-op", "deformconv", "--output", out, env=env)
    assert r.returncode == 0, r.stderr
    meta = metadata.read(out)
    assert meta.num_classes == 20 and not meta.random_weights           # classes read from the checkpoint
    assert meta.checkpoint == path.name and meta.extra["weights_sha256"] == digest
    import hashlib
    assert meta.checkpoint_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    r = _run("check_onnx", "--onnx", out, "--model", path, "--seed", "1", env=env)
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr
    wrong = tmp_path / "other.pth"
    torch.save({"epoch": 1, "state_dict": torch.load(path, weights_only=True)["state_dict"]}, wrong)
    r = _run("check_onnx", "--onnx", out, "--model", wrong, env=env)   # same tensors, another file
    assert r.returncode == 2 and "sha256 differs" in r.stderr


def _bad_cases(tmp_path, ckpt_path, tree):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    unpatched = tmp_path / "empty_tree"
    unpatched.mkdir()
    return {
        "unknown arch": (["--arch", "yolo"], {}, "dla_34, dlav0_34, resdcn_18, resdcn_101, res_18, hourglass"),
        "unknown task": (["--arch", "res_18", "--task", "ddd"], {}, "ctdet, multi_pose"),
        "missing model": (["--arch", "res_18", "--model", tmp_path / "none.pth"], {}, "not found"),
        "unreadable model": (["--arch", "res_18", "--model", junk], {}, "not a readable PyTorch file"),
        "other arch": (["--arch", "res_18", "--model", ckpt_path], {}, "does not fit this arch/task"),
        "other heads": (["--arch", "resdcn_18", "--task", "multi_pose", "--model", ckpt_path], {}, "missing"),
        "bad stride": (["--arch", "res_18", "--input", "100x128"], {}, "multiples of 32"),
        "hourglass stride": (["--arch", "hourglass", "--input", "96"], {}, "multiples of 128"),
        "bad input text": (["--arch", "res_18", "--input", "big"], {}, "INPUT=512x512"),
        "bad batch": (["--arch", "res_18", "--batch", "0"], {}, "BATCH=dynamic"),
        "bad dcn op": (["--arch", "res_18", "--dcn-op", "dcnv1"], {}, "dcnv2, deformconv"),
        "opset too old for DeformConv": (["--arch", "res_18", "--dcn-op", "deformconv", "--opset", "17"], {},
                                         "OPSET between 19"),
        "unwritable output": (["--arch", "res_18", "--output", a_file / "x.onnx"], {}, "not a writable directory"),
        "not patched": (["--arch", "res_18"], {"CENTERNET_TREE": str(unpatched)}, "make patch"),
    }


def test_cli_bad_input_one_line_nothing_written(patched_tree, upstream_ckpt, tmp_path):
    cases = _bad_cases(tmp_path, upstream_ckpt[0], patched_tree)
    for name, (args, env, needle) in cases.items():
        outdir = tmp_path / name.replace(" ", "_")
        outdir.mkdir()
        if "--input" not in args:
            args = [*args, "--input", "128"]
        if "--output" not in args:
            args = [*args, "--output", outdir / "m.onnx"]
        r = _run("export", *args, env={"CENTERNET_TREE": str(patched_tree), **env})
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2, (name, r.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (name, r.stderr)
        assert list(outdir.iterdir()) == [], name


# ------------------------------------------------------------------ INPUT=dynamic (any H and W, keep_res)
def test_dynamic_hw_export_runs_at_other_sizes(resdcn, tmp_path, patched_tree, capsys):
    """Traced at 128x128; runs (against PyTorch) at sizes it never saw, non-square both ways."""
    model = export.to_onnx(resdcn, batch="dynamic", dcn_op="dcnv2", dynamic_hw=True)   # onnx.checker full check inside
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*model.graph.input, *model.graph.output]}
    assert dims == {"input": ["batch", 3, "height", "width"],
                    **{n: ["batch", c, "height/4", "width/4"] for n, c in EXPECTED_HEADS["ctdet"]}}
    meta = metadata.read(model)
    assert meta.dynamic_hw and (meta.input_h, meta.input_w) == HW and meta.stride == 32
    assert not metadata.read(export.to_onnx(resdcn)).dynamic_hw
    for n, hw in ((1, (128, 192)), (2, (256, 128))):
        x = np.random.default_rng(hw[0]).standard_normal((n, 3, *hw)).astype(np.float32)
        diffs = check_onnx.compare(model, resdcn.net, x)
        assert [d.shape[2:] for d in diffs] == [(hw[0] // 4, hw[1] // 4)] * 3
        assert all(d.ok for d in diffs), check_onnx.report(diffs)
    # check_onnx checks a dynamic-H/W model at its default size and at a second, non-square one.
    path = tmp_path / "dyn.onnx"
    export.save(model, path)
    assert check_onnx.check_sizes(meta) == [(128, 128), (64, 160)]
    assert check_onnx.main(["--onnx", str(path), "--tree", str(patched_tree), "--seed", "1", "--batch", "1"]) == 0
    out = capsys.readouterr().out
    assert "input 1x3x128x128 and 1x3x64x160" in out and out.count("PASS") == 2, out
    assert "(1, 80, 16, 40)" in out


def test_dynamic_hw_wrong_weight_fails_check(resdcn):
    model = export.to_onnx(resdcn, dcn_op="deformconv", dynamic_hw=True)
    init = next(i for i in model.graph.initializer if "conv_offset_mask.weight" in i.name)
    arr = onnx.numpy_helper.to_array(init).copy()
    arr.flat[0] += 1e-2
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    x = np.random.default_rng(6).standard_normal((1, 3, 64, 160)).astype(np.float32)
    assert not all(d.ok for d in check_onnx.compare(model, resdcn.net, x))
