"""`python -m centernet_trt.compare`: the verdict logic on CPU (ONNX Runtime stands in for the engine's
outputs), and the refusal without TensorRT. The TensorRT run itself needs a GPU machine."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from centernet_trt import backends, compare, engine, metadata
from centernet_trt.fsutil import sha256_file
from centernet_trt.metadata import ModelMeta

from test_engine import run, small_graph  # noqa: E402  (tests/ is on sys.path under pytest's rootdir import mode)


@pytest.fixture(scope="module")
def outputs():
    fp32 = small_graph()
    x = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)
    return run(fp32, x), run(engine.to_fp16(fp32), x)


def test_faithful_fp16_passes_and_a_worse_one_fails(outputs):
    ref, fp16 = outputs
    assert all(r["ok"] for r in compare.compare_to_budget(ref, fp16, fp16))
    # An engine 5× further from fp32 than a faithful fp16 execution fails, output by output.
    worse = {k: ref[k] + 5 * (fp16[k] - ref[k]) + 1e-2 * (k == "dc") for k in ref}
    rows = compare.compare_to_budget(ref, worse, fp16)
    assert [r["ok"] for r in rows] == [False, False] and all(r["line"].rstrip().endswith("FAIL") for r in rows)


def test_fp32_allclose(outputs):
    ref, _ = outputs
    close = {k: v + 1e-4 for k, v in ref.items()}
    assert all(r["ok"] for r in compare.compare_outputs(ref, close, 1e-3, 1e-3))
    off = dict(close, hm=ref["hm"] + np.where(np.arange(ref["hm"].size).reshape(ref["hm"].shape) == 7, 0.5, 0))
    rows = {r["name"]: r for r in compare.compare_outputs(ref, off, 1e-3, 1e-3)}
    assert not rows["hm"]["ok"] and rows["dc"]["ok"] and "5.000e-01" in rows["hm"]["line"]
    nan = dict(ref, dc=np.full_like(ref["dc"], np.nan))
    assert not {r["name"]: r for r in compare.compare_outputs(ref, nan, 1e-3, 1e-3)}["dc"]["ok"]


def test_detection_comparison():
    meta = ModelMeta(arch="x", task="ctdet", heads=[("hm", 3), ("reg", 2), ("wh", 2)], input_h=64, input_w=64,
                     mean=[0.4] * 3, std=[0.3] * 3, num_classes=3)
    hm = np.full((1, 3, 16, 16), -8, np.float32)
    hm[0, 1, 5, 7] = hm[0, 2, 10, 3] = 3
    ref = {"hm": hm, "reg": np.full((1, 2, 16, 16), 0.5, np.float32), "wh": np.full((1, 2, 16, 16), 4, np.float32)}
    assert compare.compare_detections(ref, {k: v + 1e-3 for k, v in ref.items()}, meta)["ok"]
    moved = dict(ref, hm=np.roll(hm, 2, axis=3))   # peaks two cells away: boxes no longer overlap at IoU 0.9
    res = compare.compare_detections(ref, moved, meta)
    assert not res["ok"] and res["line"].startswith("detections: 0/2")


def test_without_tensorrt_one_line(tmp_path, capsys):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    model = small_graph()
    onnx.save(model, str(tmp_path / "m.onnx"))
    eng = tmp_path / "m_fp16.engine"
    eng.write_bytes(b"engine")
    backends.sidecar_path(eng).write_text(json.dumps({
        "engine_sha256": sha256_file(eng), "plugin": None, "precision": "fp16",
        "onnx": {"path": "m.onnx"}, "model": json.loads(metadata.read(model).to_json())}))
    with pytest.raises(SystemExit) as exc:
        compare.main(["--onnx", str(tmp_path / "m.onnx"), "--engine", str(eng)])
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("error: TensorRT is not installed")


def test_shape_mismatch_is_a_failure_not_a_crash(outputs):
    ref, fp16 = outputs
    # an engine that returned one image of two
    for rows in (compare.compare_to_budget(ref, dict(fp16, hm=fp16["hm"][:1]), fp16),
                 compare.compare_outputs(ref, dict(ref, hm=ref["hm"][:1]), 1e-3, 1e-3)):
        by = {r["name"]: r for r in rows}
        assert not by["hm"]["ok"] and "shape" in by["hm"]["line"] and by["dc"]["ok"]
