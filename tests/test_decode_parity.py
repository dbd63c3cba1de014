"""Our pre-processing, decode and post-processing against upstream CenterNet's own functions, imported
from the patched tree (decode/post-process) or compiled from its source (``BaseDetector.pre_process``,
whose module needs the whole model zoo and a progress-bar package)."""
from __future__ import annotations

import ast
import importlib
import types

import cv2
import numpy as np
import pytest
import torch

from centernet_trt import decode, postprocess, preprocess
from centernet_trt.metadata import ModelMeta

pytestmark = pytest.mark.upstream

MEAN = [0.40789654, 0.44719302, 0.47026115]
STD = [0.28863828, 0.27408164, 0.27809835]


def model_meta(task: str, arch: str = "resdcn_18", size: int = 512) -> ModelMeta:
    if task == "ctdet":
        heads, classes, joints = [("hm", 80), ("reg", 2), ("wh", 2)], 80, 0
    else:
        heads = [("hm", 1), ("wh", 2), ("hps", 34), ("reg", 2), ("hm_hp", 17), ("hp_offset", 2)]
        classes, joints = 1, 17
    return ModelMeta(arch=arch, task=task, heads=heads, input_h=size, input_w=size, mean=MEAN, std=STD,
                     num_classes=classes, num_joints=joints)


@pytest.fixture(scope="module")
def up(patched_tree):
    """Upstream's functions: decode, post_process, image, and pre_process compiled from its source."""
    ns = types.SimpleNamespace(
        decode=importlib.import_module("models.decode"),
        post=importlib.import_module("utils.post_process"),
        image=importlib.import_module("utils.image"),
    )
    src = (patched_tree / "src/lib/detectors/base_detector.py").read_text()
    cls = next(n for n in ast.parse(src).body if isinstance(n, ast.ClassDef) and n.name == "BaseDetector")
    fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "pre_process")
    scope = {"np": np, "cv2": cv2, "torch": torch, "get_affine_transform": ns.image.get_affine_transform}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "base_detector.py", "exec"), scope)
    ns.pre_process = scope["pre_process"]
    return ns


def upstream_detector(meta: ModelMeta, keep_res: bool):
    """The attributes ``pre_process`` reads from ``self``, set as upstream's opts.init sets them."""
    opt = types.SimpleNamespace(fix_res=not keep_res, input_h=meta.input_h, input_w=meta.input_w,
                                pad=preprocess.default_pad(meta.arch), down_ratio=4, flip_test=False)
    return types.SimpleNamespace(opt=opt, mean=np.array(MEAN, np.float32).reshape(1, 1, 3),
                                 std=np.array(STD, np.float32).reshape(1, 1, 3))


def peaky_heatmap(gen: torch.Generator, shape, peaks: int, noise: float = 0.2) -> torch.Tensor:
    """Sigmoid-range heatmap with planted peaks and quantised values, so NMS plateaus and top-K ties occur."""
    b, c, h, w = shape
    heat = torch.rand(shape, generator=gen) * noise
    for _ in range(peaks):
        i = [int(torch.randint(n, (1,), generator=gen)) for n in (b, c, h, w)]
        heat[i[0], i[1], max(i[2] - 1, 0):i[2] + 2, max(i[3] - 1, 0):i[3] + 2] += 0.3
        heat[i[0], i[1], i[2], i[3]] = 0.5 + 0.5 * float(torch.rand(1, generator=gen))
    return (heat * 64).round() / 64


def ctdet_outputs(seed: int, b: int = 2, hw: int = 128):
    gen = torch.Generator().manual_seed(seed)
    hm = peaky_heatmap(gen, (b, 80, hw, hw), peaks=60)
    wh = torch.rand((b, 2, hw, hw), generator=gen) * 40
    reg = torch.rand((b, 2, hw, hw), generator=gen)
    return hm, wh, reg


def pose_outputs(seed: int, b: int = 2, hw: int = 128):
    gen = torch.Generator().manual_seed(seed)
    hm = peaky_heatmap(gen, (b, 1, hw, hw), peaks=20)
    hm_hp = peaky_heatmap(gen, (b, 17, hw, hw), peaks=200, noise=0.0)
    # Sparse weak maxima in [0.05, 0.15): the top-K hm_hp candidates straddle upstream's 0.1 snapping threshold.
    sparse = torch.rand((b, 17, hw, hw), generator=gen) < 150 / hw**2
    hm_hp = torch.maximum(hm_hp, sparse * (0.05 + 0.1 * torch.rand((b, 17, hw, hw), generator=gen)))
    wh = torch.rand((b, 2, hw, hw), generator=gen) * 40 + 5
    hps = (torch.rand((b, 34, hw, hw), generator=gen) - 0.5) * 30
    reg = torch.rand((b, 2, hw, hw), generator=gen)
    hp_offset = torch.rand((b, 2, hw, hw), generator=gen)
    return hm, wh, hps, reg, hm_hp, hp_offset


@pytest.mark.parametrize("seed", [0, 1])
def test_ctdet_decode_matches_upstream(up, seed):
    hm, wh, reg = ctdet_outputs(seed)
    ours = decode.ctdet_decode(hm.clone(), wh.clone(), reg.clone(), k=100)
    theirs = up.decode.ctdet_decode(hm.clone(), wh.clone(), reg=reg.clone(), K=100)
    assert ours.shape == theirs.shape == (2, 100, 6)
    assert torch.equal(ours[..., 5], theirs[..., 5])           # same classes, same order
    assert torch.equal(ours[..., 4], theirs[..., 4])
    torch.testing.assert_close(ours[..., :4], theirs[..., :4], rtol=0, atol=1e-4)
    # Without reg upstream uses the cell centre (+0.5).
    torch.testing.assert_close(decode.ctdet_decode(hm, wh, None), up.decode.ctdet_decode(hm, wh), rtol=0, atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_multi_pose_decode_matches_upstream(up, seed):
    hm, wh, hps, reg, hm_hp, hp_offset = pose_outputs(seed)
    args = [t.clone() for t in (hm, wh, hps, reg, hm_hp, hp_offset)]
    ours = decode.multi_pose_decode(*args[:3], reg=args[3], hm_hp=args[4], hp_offset=args[5], k=100)
    args = [t.clone() for t in (hm, wh, hps, reg, hm_hp, hp_offset)]
    theirs = up.decode.multi_pose_decode(*args[:3], reg=args[3], hm_hp=args[4], hp_offset=args[5], K=100)
    assert ours.shape == theirs.shape == (2, 100, 40)
    assert torch.equal(ours[..., [4, 39]], theirs[..., [4, 39]])
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)
    # The inputs really exercise snapping: some joints moved to hm_hp peaks.
    unsnapped = decode.multi_pose_decode(hm.clone(), wh.clone(), hps.clone(), reg=reg.clone(), k=100)
    moved = (unsnapped[..., 5:39] - ours[..., 5:39]).abs().amax(dim=-1) > 1e-3
    assert moved.any() and not moved.all()


def test_decode_applies_sigmoid_to_raw_heads(up):
    hm, wh, reg = ctdet_outputs(2, b=1)
    logits = torch.logit(hm.clamp(1e-4, 1 - 1e-4))
    ours = decode.decode({"hm": logits.numpy(), "wh": wh.numpy(), "reg": reg.numpy()}, model_meta("ctdet"))
    theirs = up.decode.ctdet_decode(logits.sigmoid(), wh, reg=reg)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)


def image(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8), (w, h))
    return img


@pytest.mark.parametrize("keep_res", [False, True], ids=["fix_res", "keep_res"])
@pytest.mark.parametrize("arch", ["resdcn_18", "hourglass"])
@pytest.mark.parametrize("hw,scale", [((375, 500), 1.0), ((640, 427), 1.0), ((333, 333), 0.75)])
def test_preprocess_matches_upstream(up, keep_res, arch, hw, scale):
    meta = model_meta("ctdet", arch=arch)
    img = image(hw[0] + hw[1], *hw)
    ours, im = preprocess.preprocess(img, meta, keep_res=keep_res, scale=scale)
    theirs, their_meta = up.pre_process(upstream_detector(meta, keep_res), img, scale)
    np.testing.assert_array_equal(ours[None], theirs.numpy())
    np.testing.assert_array_equal(im.c, their_meta["c"])
    np.testing.assert_array_equal(np.asarray(im.s), np.asarray(their_meta["s"]))
    assert (im.out_height, im.out_width) == (their_meta["out_height"], their_meta["out_width"])
    if keep_res:
        pad = preprocess.default_pad(arch) + 1
        assert ours.shape[1] % pad == 0 and ours.shape[2] % pad == 0


@pytest.mark.parametrize("keep_res", [False, True], ids=["fix_res", "keep_res"])
def test_ctdet_end_to_end_matches_upstream(up, keep_res):
    """Image → pre-process → (network stand-in) → decode → image-space boxes, both ways."""
    meta = model_meta("ctdet")
    img = image(7, 480, 640)
    _, im = preprocess.preprocess(img, meta, keep_res=keep_res)
    _, their_meta = up.pre_process(upstream_detector(meta, keep_res), img, 1.0)
    hm, wh, reg = (t[..., :im.out_height, :im.out_width].contiguous()
                   for t in ctdet_outputs(3, b=1, hw=max(im.out_height, im.out_width)))
    dets = decode.ctdet_decode(hm, wh, reg).numpy()
    ours = postprocess.postprocess(dets, [im], meta)[0]
    their_dets = up.decode.ctdet_decode(hm, wh, reg=reg).numpy()
    theirs = up.post.ctdet_post_process(their_dets.copy(), [their_meta["c"]], [their_meta["s"]],
                                        their_meta["out_height"], their_meta["out_width"], 80)[0]
    assert sorted(ours) == sorted(theirs) == list(range(1, 81))
    for j in theirs:
        expected = np.array(theirs[j], dtype=np.float32).reshape(-1, 5)
        assert ours[j].shape == expected.shape
        np.testing.assert_allclose(ours[j], expected, rtol=0, atol=1e-4)
    assert sum(len(v) for v in ours.values()) == 100


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_multi_pose_end_to_end_matches_upstream(up, scale):
    meta = model_meta("multi_pose")
    img = image(11, 512, 384)
    _, im = preprocess.preprocess(img, meta, scale=scale)
    _, their_meta = up.pre_process(upstream_detector(meta, False), img, scale)
    outs = pose_outputs(5, b=1)
    dets = decode.multi_pose_decode(*[t.clone() for t in outs[:3]], reg=outs[3], hm_hp=outs[4],
                                    hp_offset=outs[5]).numpy()
    ours = postprocess.postprocess(dets, [im], meta)[0]
    their_dets = up.decode.multi_pose_decode(*[t.clone() for t in outs[:3]], reg=outs[3], hm_hp=outs[4],
                                             hp_offset=outs[5]).numpy()
    theirs = up.post.multi_pose_post_process(their_dets.copy(), [their_meta["c"]], [their_meta["s"]],
                                             their_meta["out_height"], their_meta["out_width"])[0]
    (key,) = theirs
    expected = np.array(theirs[key], dtype=np.float32).reshape(-1, 39)
    expected[:, :4] /= scale   # MultiPoseDetector.post_process
    expected[:, 5:] /= scale
    assert list(ours) == [1] == [int(key)]
    np.testing.assert_allclose(ours[1], expected, rtol=0, atol=1e-4)
