"""End to end on CPU with the onnxruntime backend, and every bad input as one clear line.

A hand-built model with a known answer checks the whole chain (pre-process → ONNX Runtime → decode →
back to image pixels → JSON/drawing); an exported upstream network checks it runs on real exports.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from torch import nn

from centernet_trt import backends, coco, infer, metadata
from centernet_trt.fsutil import sha256_file
from centernet_trt.metadata import ModelMeta
from cli_runner import call_main  # tests/ is on sys.path under pytest's default import mode

MEAN = [0.40789654, 0.44719302, 0.47026115]
STD = [0.28863828, 0.27408164, 0.27809835]
CLS = 17            # the class the toy model fires for ("horse")
SIZE = 128          # model input; output map 32×32


class Toy(nn.Module):
    """ctdet heads from a 4×4 average pool of brightness: the heatmap of class CLS peaks on a bright
    block, reg is 0.5 (cell centre) and wh is 8 cells everywhere."""

    def __init__(self, task: str):
        super().__init__()
        self.task = task
        self.pool = nn.AvgPool2d(4)

    def forward(self, x):
        v = self.pool(x.mean(1, keepdim=True))                  # about -1.5 black … +2 white
        ones = torch.ones_like(v)
        if self.task == "ctdet":
            hm = torch.cat([v * 4 - 6 if c == CLS else -10 * ones for c in range(80)], 1)
            return hm, 0.5 * ones.expand(-1, 2, -1, -1), 8 * ones.expand(-1, 2, -1, -1)
        hm = v * 4 - 6
        hps = torch.cat([ones * (j % 5 - 2) for j in range(34)], 1)
        return (hm, 8 * ones.expand(-1, 2, -1, -1), hps, 0.5 * ones.expand(-1, 2, -1, -1),
                torch.cat([v * 4 - 6] * 17, 1), 0.5 * ones.expand(-1, 2, -1, -1))


HEADS = {"ctdet": [("hm", 80), ("reg", 2), ("wh", 2)],
         "multi_pose": [("hm", 1), ("wh", 2), ("hps", 34), ("reg", 2), ("hm_hp", 17), ("hp_offset", 2)]}


def export_toy(path: Path, task: str, with_meta: bool = True, dynamic_hw: bool = False) -> Path:
    heads = HEADS[task]
    buf = io.BytesIO()
    axes = {0: "N", 2: "H", 3: "W"} if dynamic_hw else {0: "N"}
    torch.onnx.export(Toy(task), torch.zeros(1, 3, SIZE, SIZE), buf, input_names=["input"],
                      output_names=[h for h, _ in heads], dynamic_axes={"input": axes},
                      opset_version=17, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    if with_meta:
        metadata.attach(model, ModelMeta(arch="toy", task=task, heads=heads, input_h=SIZE, input_w=SIZE,
                                         mean=MEAN, std=STD, num_classes=heads[0][1], batch="dynamic",
                                         dcn_op="none", num_joints=17 if task == "multi_pose" else 0,
                                         checkpoint="random", random_weights=True))
    onnx.save(model, str(path))
    return path


def block_image(path: Path, x: int, y: int, size: tuple = (256, 256), block: int = 8) -> Path:
    """Black image (w, h) with a white block at (x, y): one cell of the toy's output map after the warp."""
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[y:y + block, x:x + block] = 255
    cv2.imwrite(str(path), img)
    return path


@pytest.fixture(scope="module")
def toy_onnx(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    return {t: export_toy(d / f"{t}_toy.onnx", t) for t in HEADS}


def run_cli(capsys, argv):
    """(exit code, stdout, stderr) of the infer CLI."""
    return call_main(infer.main, argv, capsys)


def test_toy_detection_lands_on_the_block(tmp_path, toy_onnx, capsys):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    # 256×256 → 128 input (×0.5) → 32 map (÷4): pixel block [96, 104) × [160, 168) is map cell (12, 20).
    block_image(imgs / "a.png", 96, 160)
    block_image(imgs / "b.jpg", 200, 40)
    code, out, err = run_cli(capsys, ["--img", str(imgs), "--backend", "onnxruntime", "--onnx",
                                      str(toy_onnx["ctdet"]), "--out", str(tmp_path / "out"), "--batch-size", "2"])
    assert code == 0, err
    recs = json.loads((tmp_path / "out/detections.json").read_text())
    by_file = {r["file_name"]: r for r in recs}
    assert len(recs) == 2 and set(by_file) == {"a.png", "b.jpg"}
    a = by_file["a.png"]
    # Cell centre (12.5, 20.5) × 8 px per cell → (100, 164); wh 8 cells → 64 px.
    np.testing.assert_allclose(a["bbox"], [68, 132, 64, 64], atol=0.01)
    assert a["category_id"] == coco.CATEGORY_IDS[CLS] and a["category_name"] == "horse"
    assert 0.8 < a["score"] < 1            # sigmoid(4 · ~2 − 6) on a white cell
    np.testing.assert_allclose(by_file["b.jpg"]["bbox"], [172, 12, 64, 64], atol=0.01)
    drawn = cv2.imread(str(tmp_path / "out/a.png"))
    assert drawn.shape == (256, 256, 3)
    assert (drawn[132, 68:132] != 0).any(axis=-1).all()       # the box's top edge is drawn
    assert "a.png: 1 detection(s)" in out


def test_keep_res_pads_instead_of_resizing(tmp_path, toy_onnx, capsys):
    """keep_res: a 300×260 image is padded (centred) to 320×288 — a shift of (10, 14), no scaling."""
    onnx_path = export_toy(tmp_path / "dyn.onnx", "ctdet", dynamic_hw=True)
    img = block_image(tmp_path / "k.png", 94, 162, size=(300, 260), block=4)  # → input [104, 108) = cell (26, 44)
    code, _, err = run_cli(capsys, ["--img", str(img), "--onnx", str(onnx_path), "--keep-res", "--out", str(tmp_path / "out")])
    assert code == 0, err
    (rec,) = json.loads((tmp_path / "out/detections.json").read_text())
    # Centre (26.5, 44.5) cells × 4 px − shift (10, 14) → (96, 164); wh 8 cells = 32 px.
    np.testing.assert_allclose(rec["bbox"], [80, 148, 32, 32], atol=0.01)
    # The fixed-size toy cannot take a keep_res input: one line, nothing written.
    code, _, err = run_cli(capsys, ["--img", str(img), "--onnx", str(toy_onnx["ctdet"]), "--keep-res",
                                    "--out", str(tmp_path / "out2")])
    assert_one_line_error(code, err, "--keep-res", "128x128", "make onnx INPUT=dynamic")
    assert not (tmp_path / "out2").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no staging left


def test_dynamic_model_refuses_a_size_off_the_stride(tmp_path):
    backend = backends.OnnxRuntimeBackend(export_toy(tmp_path / "dyn.onnx", "ctdet", dynamic_hw=True))
    assert backend.dynamic_hw
    assert backend.run(np.zeros((1, 3, 64, 96), np.float32))["hm"].shape == (1, 80, 16, 24)
    with pytest.raises(backends.UserError, match=r"input 64x100 is not a multiple of toy's stride 32"):
        backend.run(np.zeros((1, 3, 64, 100), np.float32))


def test_multi_pose_writes_keypoints(tmp_path, toy_onnx, capsys):
    img = block_image(tmp_path / "p.jpg", 96, 160)
    code, _, err = run_cli(capsys, ["--img", str(img), "--onnx", str(toy_onnx["multi_pose"]),
                                    "--out", str(tmp_path / "out")])
    assert code == 0, err
    (rec,) = json.loads((tmp_path / "out/detections.json").read_text())
    assert rec["category_id"] == 1 and rec["category_name"] == "person"
    kps = np.array(rec["keypoints"]).reshape(17, 3)
    assert (kps[:, 2] == 1).all()
    # Regressed joints sit (j % 5 - 2) cells from the peak cell (12, 20); the hm_hp peak (with its 0.5
    # offset) is at (12.5, 20.5). Upstream snaps a joint to it when within 0.3 × the 8-cell box side.
    regressed = np.array([12, 20]) + np.array([j % 5 - 2 for j in range(34)]).reshape(17, 2)
    snap = np.linalg.norm(regressed - [12.5, 20.5], axis=1) <= 0.3 * 8
    expected = np.where(snap[:, None], [12.5, 20.5], regressed) * 8       # 8 image px per cell
    assert 0 < snap.sum() < 17
    np.testing.assert_allclose(kps[:, :2], expected, atol=0.01)
    assert (tmp_path / "out/p.jpg").is_file()


def test_real_export_runs_on_cpu(tmp_path, patched_tree, capsys):
    """An upstream network (resdcn_18, random weights, DeformConv form) exported by our export step."""
    export = pytest.importorskip("centernet_trt.export", reason="the export step (centernet_trt.export) is not in this tree")
    onnx_path = tmp_path / "ctdet_resdcn_18.onnx"
    export.main(["--arch", "resdcn_18", "--task", "ctdet", "--model", "random", "--input", "128",
                 "--dcn-op", "deformconv", "--tree", str(patched_tree), "--output", str(onnx_path)])
    block_image(tmp_path / "x.jpg", 96, 160, size=(320, 240))
    code, _, err = run_cli(capsys, ["--img", str(tmp_path / "x.jpg"), "--onnx", str(onnx_path),
                                    "--out", str(tmp_path / "out"), "--thresh", "0"])
    assert code == 0, err
    recs = json.loads((tmp_path / "out/detections.json").read_text())
    assert len(recs) == 100   # thresh 0: all top-K (random weights still score > 0)
    assert all(len(r["bbox"]) == 4 and r["category_name"] in coco.CLASS_NAMES for r in recs)
    assert cv2.imread(str(tmp_path / "out/x.jpg")).shape == (240, 320, 3)


class TorchBackend(backends.Backend):
    """The PyTorch network itself behind the backend interface: the reference for an exported ONNX."""

    def __init__(self, prep, meta):
        self.net, self.meta, self.output_names = prep.net, meta, meta.head_names

    def _run(self, batch):
        with torch.no_grad():
            return {k: v.numpy() for k, v in zip(self.output_names, self.net(torch.from_numpy(batch)))}


def test_keep_res_real_dynamic_export(tmp_path, patched_tree, capsys):
    """resdcn_18 exported with INPUT=dynamic (traced at 128x128): `infer --keep-res` runs two images at
    their own padded sizes (190x100 → 192x128, 150x260 → 160x288), batched together or not; the
    detections are PyTorch's on the same inputs, and differ from fix_res (so the sizes really changed)."""
    from centernet_trt import export

    prep = export.prepare("resdcn_18", "ctdet", "random", input_hw=(128, 128), tree=patched_tree, quiet=True)
    onnx_path = export.save(export.to_onnx(prep, batch="dynamic", dynamic_hw=True), tmp_path / "dyn.onnx")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for name, (w, h) in {"a.png": (190, 100), "b.png": (150, 260)}.items():
        cv2.imwrite(str(imgs / name), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    meta = metadata.read(onnx_path)
    images = [cv2.imread(str(imgs / n)) for n in ("a.png", "b.png")]
    want = [infer.to_records(i, n, r, meta, 0.0) for i, (n, r) in
            enumerate(zip(("a.png", "b.png"), infer.detect(TorchBackend(prep, meta), images, keep_res=True)))]
    assert [infer.preprocess.preprocess(im, meta, keep_res=True)[0].shape for im in images] == [(3, 128, 192), (3, 288, 160)]
    for batch_size in ("1", "2"):
        out = tmp_path / f"out{batch_size}"
        code, _, err = run_cli(capsys, ["--img", str(imgs), "--onnx", str(onnx_path), "--keep-res", "--thresh", "0",
                                        "--batch-size", batch_size, "--out", str(out), "--no-draw"])
        assert code == 0, err
        recs = json.loads((out / "detections.json").read_text())
        for name, ref in zip(("a.png", "b.png"), want):
            got = [r for r in recs if r["file_name"] == name][:20]
            assert len(got) == 20
            np.testing.assert_allclose([r["bbox"] for r in got], [r["bbox"] for r in ref[:20]], atol=0.02)
            np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in ref[:20]], atol=2e-4)
            assert [r["category_id"] for r in got] == [r["category_id"] for r in ref[:20]]
    fix = infer.to_records(0, "a.png", infer.detect(TorchBackend(prep, meta), images[:1])[0], meta, 0.0)
    assert [r["bbox"] for r in fix[:20]] != [r["bbox"] for r in want[0][:20]]


# --- bad input: one line, exit 2, nothing written ---------------------------------------------------

def assert_one_line_error(code, err, *words):
    assert code == 2
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], lines[0]


def fake_engine(tmp_path: Path, toy: Path, plugin_bytes=b"plugin v1", **overrides) -> tuple[Path, Path]:
    """An engine file with a sidecar as `make engine` writes it (the bytes are not a real engine)."""
    engine, plugin = tmp_path / "m_fp16.engine", tmp_path / "libdcnv2_plugin.so"
    engine.write_bytes(b"serialized engine")
    plugin.write_bytes(plugin_bytes)
    side = {"tensorrt": "10.16.0", "gpu": "NVIDIA H100", "compute_capability": "9.0", "precision": "fp16",
            "engine_sha256": sha256_file(engine),
            "plugin": {"path": plugin.name, "sha256": sha256_file(plugin)},
            "onnx": {"path": toy.name}, "model": json.loads(metadata.read(toy).to_json())}
    side.update(overrides)
    backends.sidecar_path(engine).write_text(json.dumps(side))
    return engine, plugin


@pytest.fixture
def image_dir(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    block_image(d / "ok.jpg", 10, 10)
    return d


def test_missing_engine(tmp_path, image_dir, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, ["--img", str(image_dir), "--engine", str(tmp_path / "nope.engine"),
                                    "--plugin", "x.so", "--out", str(out)])
    assert_one_line_error(code, err, "nope.engine", "not found", "make engine")
    assert not out.exists()


def test_corrupt_engine(tmp_path, image_dir, toy_onnx, capsys):
    engine, plugin = fake_engine(tmp_path, toy_onnx["ctdet"])
    engine.write_bytes(b"serialized engi")   # truncated
    code, _, err = run_cli(capsys, ["--img", str(image_dir), "--engine", str(engine), "--plugin", str(plugin),
                                    "--out", str(tmp_path / "out")])
    assert_one_line_error(code, err, "does not match its sidecar", "make engine")
    assert not (tmp_path / "out").exists()


def test_engine_without_sidecar(tmp_path, image_dir, toy_onnx, capsys):
    engine, plugin = fake_engine(tmp_path, toy_onnx["ctdet"])
    backends.sidecar_path(engine).unlink()
    code, _, err = run_cli(capsys, ["--img", str(image_dir), "--engine", str(engine), "--plugin", str(plugin)])
    assert_one_line_error(code, err, "no sidecar", "make engine")


def test_engine_built_with_another_plugin(tmp_path, image_dir, toy_onnx, capsys):
    engine, plugin = fake_engine(tmp_path, toy_onnx["ctdet"])
    plugin.write_bytes(b"plugin v2")         # rebuilt plugin since the engine was made
    code, _, err = run_cli(capsys, ["--img", str(image_dir), "--engine", str(engine), "--plugin", str(plugin),
                                    "--out", str(tmp_path / "out")])
    assert_one_line_error(code, err, "another plugin build", "make engine")
    assert not (tmp_path / "out").exists()


def test_engine_built_for_another_gpu_or_tensorrt(tmp_path, toy_onnx):
    engine, plugin = fake_engine(tmp_path, toy_onnx["ctdet"])
    side = backends.check_engine_files(engine, plugin)
    here = {"gpu": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}
    with pytest.raises(backends.UserError, match=r"built for NVIDIA H100 \(compute 9.0\).*A100.*make engine"):
        backends.check_engine_device(side, engine, "10.16.0", here)
    with pytest.raises(backends.UserError, match=r"TensorRT 10.16.0, this is TensorRT 10.9.0"):
        backends.check_engine_device(side, engine, "10.9.0", {"gpu": "NVIDIA H100", "compute_capability": "9.0"})
    backends.check_engine_device(side, engine, "10.16.0", {"gpu": "NVIDIA H100 PCIe", "compute_capability": "9.0"})


def test_valid_engine_without_tensorrt_says_how_to_get_it(tmp_path, image_dir, toy_onnx, capsys):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    engine, plugin = fake_engine(tmp_path, toy_onnx["ctdet"])
    code, _, err = run_cli(capsys, ["--img", str(image_dir), "--engine", str(engine), "--plugin", str(plugin),
                                    "--out", str(tmp_path / "out")])
    assert_one_line_error(code, err, "TensorRT is not installed", "pip install tensorrt", "docker/")
    assert not (tmp_path / "out").exists()


def test_unreadable_image_writes_nothing(tmp_path, image_dir, toy_onnx, capsys):
    (image_dir / "zz_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, ["--img", str(image_dir), "--onnx", str(toy_onnx["ctdet"]), "--out", str(out)])
    assert_one_line_error(code, err, "cannot read image", "zz_broken.jpg")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # staging removed


def test_empty_directory(tmp_path, toy_onnx, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, ["--img", str(tmp_path / "empty"), "--onnx", str(toy_onnx["ctdet"]),
                                    "--out", str(tmp_path / "out")])
    assert_one_line_error(code, err, "no images")
    assert not (tmp_path / "out").exists()


def test_missing_image_path(tmp_path, toy_onnx, capsys):
    code, _, err = run_cli(capsys, ["--img", str(tmp_path / "nope.jpg"), "--onnx", str(toy_onnx["ctdet"])])
    assert_one_line_error(code, err, "does not exist")


def test_onnx_without_metadata(tmp_path, image_dir, capsys):
    bare = export_toy(tmp_path / "bare.onnx", "ctdet", with_meta=False)
    code, _, err = run_cli(capsys, ["--img", str(image_dir), "--onnx", str(bare), "--out", str(tmp_path / "out")])
    assert_one_line_error(code, err, "no centernet-trt metadata", "make onnx")
    assert not (tmp_path / "out").exists()


def test_corrupt_onnx(tmp_path, image_dir, capsys):
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage")
    code, _, err = run_cli(capsys, ["--img", str(image_dir), "--onnx", str(tmp_path / "junk.onnx")])
    assert_one_line_error(code, err, "junk.onnx")


def test_out_dir_may_not_be_the_image_dir(image_dir, toy_onnx, capsys):
    code, _, err = run_cli(capsys, ["--img", str(image_dir), "--onnx", str(toy_onnx["ctdet"]), "--out", str(image_dir)])
    assert_one_line_error(code, err, "image folder")


def test_out_on_another_filesystem(tmp_path, toy_onnx, capsys, monkeypatch):
    """--out on another filesystem (a Docker bind mount): renames fail with EXDEV, files are copied."""
    import errno
    import os

    def no_cross_device(real):
        def rename(src, dst, *a, **k):
            if Path(dst).parent == tmp_path / "out":
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            return real(src, dst, *a, **k)
        return rename

    monkeypatch.setattr(os, "rename", no_cross_device(os.rename))
    monkeypatch.setattr(os, "replace", no_cross_device(os.replace))
    img = block_image(tmp_path / "a.png", 96, 160)
    code, _, err = run_cli(capsys, ["--img", str(img), "--onnx", str(toy_onnx["ctdet"]), "--out", str(tmp_path / "out")])
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "detections.json"]
    assert len(json.loads((tmp_path / "out/detections.json").read_text())) == 1
