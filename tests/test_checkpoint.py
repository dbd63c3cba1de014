"""Checkpoints load safely and strictly; random weights are complete, deformable and reproducible."""
from __future__ import annotations

import argparse
import hashlib

import pytest
import torch
from torch import nn

from centernet_trt import checkpoint as ckpt
from centernet_trt import heads
from centernet_trt.errors import UserError
from centernet_trt.fsutil import sha256_file


class Tiny(nn.Module):
    def __init__(self, out=3):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.hm = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU(), nn.Conv2d(4, out, 1))


def _upstream_style(model, path, **more):
    """What upstream's save_model writes from a DataParallel-trained model."""
    torch.save({"epoch": 70, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, **more}, path)


def test_upstream_style_checkpoint_loads_strictly(tmp_path):
    src, dst = Tiny(), Tiny()
    _upstream_style(src, tmp_path / "model_best.pth")
    state = ckpt.read_state_dict(tmp_path / "model_best.pth")
    assert all(not k.startswith("module.") for k in state)
    ckpt.load_strict(dst, state)
    assert ckpt.state_digest(dst) == ckpt.state_digest(src)
    assert heads.num_classes_in(state) == 3


def test_mismatch_lists_the_keys(tmp_path):
    src = Tiny(out=5)
    del src.bn  # -> bn.* missing in the checkpoint
    src.extra = nn.Linear(1, 1)
    _upstream_style(src, tmp_path / "other.pth")
    state = ckpt.read_state_dict(tmp_path / "other.pth")
    with pytest.raises(UserError) as exc:
        ckpt.load_strict(Tiny(out=3), state, where="checkpoint other.pth")
    msg = str(exc.value)
    assert "\n" not in msg
    assert "missing 4: bn.bias, bn.running_mean, bn.running_var, bn.weight" in msg   # num_batches_tracked is optional
    assert "unexpected 2: extra.bias, extra.weight" in msg
    assert "mis-shaped 2: hm.2.bias (5,)≠(3,), hm.2.weight (5, 4, 1, 1)≠(3, 4, 1, 1)" in msg


def test_num_batches_tracked_may_be_absent(tmp_path):
    src = Tiny()
    state = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")   # a bare state dict, as PyTorch 0.4.0 saved it
    dst = Tiny()
    ckpt.load_strict(dst, ckpt.read_state_dict(tmp_path / "old.pth"))
    assert torch.equal(dst.conv.weight, src.conv.weight)


def test_code_needing_pickle_is_refused_unless_unsafe(tmp_path):
    src = Tiny()
    _upstream_style(src, tmp_path / "with_opt.pth", opt=argparse.Namespace(arch="res_18"))
    with pytest.raises(UserError, match="--unsafe-load"):
        ckpt.read_state_dict(tmp_path / "with_opt.pth")
    state = ckpt.read_state_dict(tmp_path / "with_opt.pth", unsafe=True)
    dst = Tiny()
    ckpt.load_strict(dst, state)
    assert ckpt.state_digest(dst) == ckpt.state_digest(src)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        ckpt.read_state_dict(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"this is not a checkpoint")
    with pytest.raises(UserError, match="not a readable PyTorch file"):
        ckpt.read_state_dict(tmp_path / "junk.pth")
    torch.save({"epoch": 1}, tmp_path / "empty.pth")
    with pytest.raises(UserError, match="no state dict"):
        ckpt.read_state_dict(tmp_path / "empty.pth")


def test_sha256_matches_hashlib(tmp_path):
    data = bytes(range(256)) * 9000
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_num_classes_from_hourglass_style_keys():
    # hourglass: one head per stack, each Sequential(convolution(conv, bn), Conv2d)
    state = {"hm.0.0.conv.weight": torch.zeros(256, 256, 3, 3), "hm.0.0.conv.bias": torch.zeros(256),
             "hm.0.1.bias": torch.zeros(20), "hm.1.0.conv.bias": torch.zeros(256), "hm.1.1.bias": torch.zeros(20)}
    assert heads.num_classes_in(state) == 20
    assert heads.num_classes_in({"wh.2.bias": torch.zeros(2)}) is None


# ------------------------------------------------------------------ on real upstream networks
@pytest.fixture(scope="module")
def resdcn_cfg(patched_tree):
    return heads.config("resdcn_18", "ctdet", input_hw=(128, 128))


def test_random_weights_cover_everything_and_deform(resdcn_cfg):
    fresh, model = heads.build(resdcn_cfg), heads.build(resdcn_cfg)
    ckpt.randomize(model, seed=5)
    before, after = fresh.state_dict(), model.state_dict()
    unchanged = [k for k in after if not k.endswith("num_batches_tracked") and torch.equal(before[k], after[k])]
    assert unchanged == []       # every parameter and statistic, offset/mask convs included
    dcns = ckpt.dcn_modules(model)
    assert len(dcns) == 3 and all(d.conv_offset_mask.weight.abs().min() > 0 for d in dcns)
    from centernet_trt.check_onnx import offset_stats
    import numpy as np
    stats = offset_stats(model, np.random.default_rng(0).standard_normal((1, 3, 128, 128)).astype(np.float32))
    assert 0.3 < stats["mean_abs_offset"] < 3 and stats["max_abs_offset"] > 1.5   # a few pixels
    with torch.no_grad():
        out = heads.flat(model, resdcn_cfg)(torch.randn(1, 3, 128, 128))
    assert all(torch.isfinite(o).all() and 0.1 < o.std() < 10 for o in out)   # well-scaled, not exploding


def test_random_weights_reproduce_bit_for_bit(resdcn_cfg):
    threads = torch.get_num_threads()
    digests = []
    try:
        for n in (1, max(2, threads)):       # thread count changes float64 reduction order
            torch.set_num_threads(n)
            model = heads.build(resdcn_cfg)
            ckpt.randomize(model, seed=11)
            digests.append(ckpt.state_digest(model))
    finally:
        torch.set_num_threads(threads)
    other = heads.build(resdcn_cfg)
    ckpt.randomize(other, seed=12)
    assert digests[0] == digests[1] != ckpt.state_digest(other)
