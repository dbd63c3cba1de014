"""bench/model_dcn.py's parts that need no GPU: offset calibration, the DCN swap, and a check that can fail.

The script itself runs the plugin's kernel inside whole networks on a GPU (docs/kernel.md, "Inside the network");
here torchvision plays the candidate on the CPU: the harness must pass a correct DCN and fail one that reads the
offsets as (dx, dy) instead of (dy, dx), a plausible kernel bug that a per-layer check on symmetric random offsets
could miss.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.upstream

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def md(patched_tree):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import model_dcn
    finally:
        sys.path.pop(0)
    return model_dcn


@pytest.fixture(scope="module")
def net(md, patched_tree):
    model = md.build_model("resdcn_18", seed=0)
    x = md.load_image(patched_tree, 128)
    stats = md.calibrate_offsets(model, x, offset_std=2.0, mask_std=1.5, seed=0)
    return model, x, stats


def test_input_is_an_upstream_image_normalised_as_upstream(md, patched_tree):
    x = md.load_image(patched_tree, 96)
    assert x.shape == (1, 3, 96, 96) and x.dtype == torch.float32
    # (pixel / 255 - mean) / std per BGR channel: every value within the normalised [0, 1] range's image
    for c in range(3):
        lo, hi = (0 - md.MEAN_BGR[c]) / md.STD_BGR[c], (1 - md.MEAN_BGR[c]) / md.STD_BGR[c]
        assert lo - 1e-5 <= float(x[0, c].min()) and float(x[0, c].max()) <= hi + 1e-5
    assert float(x.std()) > 0.3  # a real picture, not a constant
    batch = md.load_image(patched_tree, 96, batch=3)
    assert batch.shape == (3, 3, 96, 96) and torch.equal(batch[0], x[0])
    assert not torch.allclose(batch[0], batch[1])  # the next demo images, not copies


def test_offsets_are_calibrated_fractional_and_varied(net):
    _, _, stats = net
    assert [(s["shape"][1], s["cout"]) for s in stats] == [(512, 256), (256, 128), (128, 64)]  # resdcn_18's three
    for s in stats:
        assert s["offset_std"] == pytest.approx(2.0, rel=0.15), s
        assert s["mask_std"] == pytest.approx(1.5, rel=0.15), s
        assert s["fractional"] > 0.8, s


def test_use_dcn_swaps_and_restores_the_implementation(md, net):
    module = md.dcn_module()
    before = module._compute
    calls = []

    def spy(*args):
        calls.append(args[0].shape)
        return before(*args)

    model, x, _ = net
    with md.use_dcn(spy):
        md.head_outputs(model, x)
    assert module._compute is before
    assert len(calls) == 3


def _float64_reference(md, model, x):
    return md.head_outputs(copy.deepcopy(model).double(), x.double())


def test_harness_passes_a_correct_dcn_and_fails_swapped_offsets(md, net):
    model, x, _ = net
    ref = _float64_reference(md, model, x)
    module = md.dcn_module()
    correct = module._compute

    def swapped(x_, offset, *rest):  # (dx, dy) read as (dy, dx)
        n, c2, h, w = offset.shape
        return correct(x_, offset.view(n, c2 // 2, 2, h, w).flip(2).reshape(n, c2, h, w), *rest)

    tv = md.compare(ref, md.head_outputs(model, x))
    assert tv["peaks"] == md.TOPK and max(tv[h] for h in md.HEADS) < 1e-4, tv
    with md.use_dcn(lambda *a: correct(*a)):
        assert md.judge(md.compare(ref, md.head_outputs(model, x)), tv, md.TOL["fp32"]) == []
    with md.use_dcn(swapped):
        bad = md.compare(ref, md.head_outputs(model, x))
    why = md.judge(bad, tv, md.TOL["fp32"])
    assert why and any(w.startswith(("hm error", "wh error", "reg error")) for w in why), (bad, why)


def test_heatmap_spread_and_the_zero_stand_in_keep_shapes(md, net):
    model, x, _ = net
    model = copy.deepcopy(model)
    flat = md.calibrate_heatmap(model, x, hm_std=2.0)
    with torch.no_grad():
        logits = model(x)[-1]["hm"]
    assert flat < 0.5 and float(logits.std()) == pytest.approx(2.0, rel=1e-3)  # the random head was nearly flat
    module = md.dcn_module()
    real = module._compute
    shapes = []

    def both(*args):
        out = real(*args)
        shapes.append((tuple(out.shape), tuple(md.zeros_dcn(*args).shape)))
        return out

    with md.use_dcn(both):
        md.head_outputs(model, x)
    assert len(shapes) == 3 and all(a == b for a, b in shapes), shapes
