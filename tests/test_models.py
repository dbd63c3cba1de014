"""Every arch of the patched tree builds offline and runs on CPU; checkpoints round-trip; opts and FlatHeads."""
from __future__ import annotations

import contextlib
import io
import math
import socket
import urllib.request

import pytest
import torch

pytestmark = pytest.mark.upstream

CTDET_HEADS = {"hm": 80, "wh": 2, "reg": 2}
ARCHS = ["res_18", "resdcn_18", "resdcn_101", "dla_34", "dlav0_34", "hourglass"]


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture(scope="module")
def no_network(tmp_path_factory):
    """Any connection attempt from this process raises; an empty TORCH_HOME so no cached weights hide it."""
    def refuse(*args, **kwargs):
        raise NetworkBlocked(f"network access attempted: {args[1:] or kwargs}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket.socket, "connect_ex", refuse)
        mp.setattr(socket, "create_connection", refuse)
        mp.setattr(urllib.request, "urlopen", refuse)
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        yield


@pytest.fixture(scope="module")
def hourglass(patched_tree, no_network):
    return _build("hourglass").eval()  # the slowest build; shared by two tests


def _build(arch, pretrained=False):
    from models.model import create_model

    head_conv = 256 if "dla" in arch else 64
    with contextlib.redirect_stdout(io.StringIO()):
        return create_model(arch, dict(CTDET_HEADS), head_conv, pretrained=pretrained)


@pytest.mark.parametrize("arch", ARCHS)
def test_arch_builds_offline_and_runs(patched_tree, no_network, request, arch):
    torch.manual_seed(0)
    model = request.getfixturevalue("hourglass") if arch == "hourglass" else _build(arch).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 128, 128))
    assert len(outs) == (2 if arch == "hourglass" else 1)
    for out in outs:
        assert {k: tuple(v.shape) for k, v in out.items()} == {k: (1, c, 32, 32) for k, c in CTDET_HEADS.items()}
        assert all(torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize("arch", ["res_18", "resdcn_18", "dla_34"])
def test_pretrained_true_still_downloads(patched_tree, no_network, arch):
    """Upstream's ImageNet download for training is unchanged: with the network blocked it is attempted."""
    with pytest.raises(Exception) as info:
        _build(arch, pretrained=True)
    chain, exc = [], info.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any(isinstance(e, NetworkBlocked) for e in chain), repr(info.value)


def test_offline_build_keeps_bilinear_deconv_init(patched_tree, no_network):
    """pretrained=False skips only the download: resdcn's deconvs still get upstream's bilinear fill."""
    model = _build("resdcn_18")
    ups = [m for m in model.deconv_layers if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(ups) == 3
    # 4x4 bilinear upsampling kernel, written out: outer([1, 3, 3, 1] / 4)
    line = torch.tensor([0.25, 0.75, 0.75, 0.25])
    for up in ups:
        torch.testing.assert_close(up.weight[:, 0], torch.outer(line, line).expand_as(up.weight[:, 0]))
    dcns = [m for m in model.modules() if type(m).__name__.startswith("ModulatedDeformConv2dPack")]
    assert len(dcns) == 3 and all(float(d.conv_offset_mask.weight.detach().abs().sum()) == 0.0 for d in dcns)


def test_dla34_has_upstreams_16_dcns(patched_tree, no_network):
    model = _build("dla_34")
    assert sum(type(m).__name__ == "ModulatedDeformConv2dPack" for m in model.modules()) == 16


@pytest.mark.parametrize("arch", ["resdcn_18", "dla_34"])
def test_upstream_checkpoint_round_trip(patched_tree, no_network, tmp_path, arch):
    """A checkpoint saved the way upstream saves it (DataParallel 'module.' keys) loads with nothing dropped."""
    from models.model import load_model

    torch.manual_seed(1)
    src = _build(arch)
    for p in src.parameters():
        torch.nn.init.normal_(p)
    path = tmp_path / "model_last.pth"
    torch.save({"epoch": 7, "state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)

    dst = _build(arch)
    stripped = {k[len("module."):]: v for k, v in torch.load(path, map_location="cpu")["state_dict"].items()}
    result = dst.load_state_dict(stripped, strict=True)
    assert not result.missing_keys and not result.unexpected_keys

    fresh = _build(arch)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        load_model(fresh, str(path))
    assert "loaded" in log.getvalue() and "epoch 7" in log.getvalue()
    for word in ("Drop parameter", "No param", "Skip loading"):
        assert word not in log.getvalue()
    for key, value in src.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value, msg=key)


def test_flat_heads_returns_last_output_in_declared_order(hourglass):
    from models.flat_heads import FlatHeads, head_order

    model = hourglass
    order = head_order("ctdet", CTDET_HEADS)
    assert order == ["hm", "reg", "wh"]
    flat = FlatHeads(model, order).eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        last = model(x)[-1]
        got = flat(x)
    assert isinstance(got, tuple) and len(got) == 3
    for name, tensor in zip(order, got):
        torch.testing.assert_close(tensor, last[name])
    assert head_order("multi_pose", {"hm": 1, "wh": 2, "hps": 34, "reg": 2, "hm_hp": 17, "hp_offset": 2}) == \
        ["hm", "wh", "hps", "reg", "hm_hp", "hp_offset"]
    with pytest.raises(ValueError):
        FlatHeads(model, ["hm", "nope"])


@pytest.mark.parametrize("argv,task,heads", [
    (["--arch", "resdcn_18"], "ctdet", {"hm": 80, "wh": 2, "reg": 2}),
    ([], "ctdet", {"hm": 80, "wh": 2, "reg": 2}),
    (["--task", "multi_pose", "--arch", "dla_34"], "multi_pose",
     {"hm": 1, "wh": 2, "hps": 34, "reg": 2, "hm_hp": 17, "hp_offset": 2}),
    (["multi_pose", "--arch", "dla_34"], "multi_pose",  # upstream's `main.py multi_pose ...` style
     {"hm": 1, "wh": 2, "hps": 34, "reg": 2, "hm_hp": 17, "hp_offset": 2}),
])
def test_opts_programmatic(patched_tree, argv, task, heads):
    from opts import opts

    with contextlib.redirect_stdout(io.StringIO()):
        opt = opts().init(argv)
    assert opt.task == task and opt.heads == heads
    assert (opt.input_h, opt.input_w) == (512, 512)
    assert opt.head_conv == (256 if "dla" in opt.arch else 64)
    assert math.isclose(opt.mean[0], 0.408)
