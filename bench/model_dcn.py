"""A whole CenterNet network with every DCN layer run by the plugin's CUDA kernel, against the network in float64.

`bench/gpu_check.py` checks the kernel layer by layer on random offsets. Here the offsets and masks come from the
network's own `conv_offset_mask` layers, at every DCN shape the network has, in one forward pass: the way the
TensorRT plugin meets them inside an engine. Per arch (random weights, seeded; the offset/mask convs, zero at
upstream's init, get seeded weights scaled so the offsets have a standard deviation of --offset-std pixels and the
mask logits of --mask-std, fractional and varied as a trained model's are, and the heatmap head's last convolution
scaled so its logits spread by --hm-std: a random network's heatmap is nearly flat and its peaks near-ties) on an
upstream demo image:

* accuracy: the heads (hm after the sigmoid, wh, reg) and the top-100 detection peaks of the network in fp32, TF32
  (the DCN layers only; every other layer strict fp32) and fp16, once with torchvision's DCN and once with the
  kernel, each against the same network in float64 (torchvision's DCN in double). The kernel passes when each head's
  error is at most twice torchvision's in the same precision (or within the kernel check's per-layer tolerance) and
  it finds the reference's peaks about as well as torchvision does (at most 5 of every 100 fewer); the exit status says
  whether every row passed.
* speed: the whole forward pass (CUDA-graph replay, median) with torchvision's DCN and with the kernel, in fp16 and
  fp32 (TF32 DCN for both: torchvision's GEMM follows torch's matmul TF32 switch), and with every DCN layer replaced
  by a zero fill: the difference is what the DCN layers cost inside this PyTorch forward (in a TensorRT engine the
  other layers are fused and faster, so the DCN layers' share there is larger than here).

Usage (GPU; after `make patch` and `bash bench/gpu_run.sh`, which builds the kernel library):
    python3 bench/model_dcn.py [--tree build/CenterNet] [--archs resdcn_18,dla_34] [--size 512]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import dcn_ctypes
from bench_dcn import graph_us

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # centernet_trt (tree lookup, decode) without installing the package
from centernet_trt import upstream  # noqa: E402
from centernet_trt.decode import nms, topk  # noqa: E402

HEADS = {"hm": 80, "wh": 2, "reg": 2}
# upstream's ctdet COCO normalisation, BGR order (it reads images with OpenCV)
MEAN_BGR, STD_BGR = (0.408, 0.447, 0.470), (0.289, 0.274, 0.278)
TOPK = 100


def dcn_module():
    """The patched tree's DCN module (its `_compute` is what every DCN layer calls in eager mode)."""
    from models.networks.dcn import modulated_deform_conv
    return modulated_deform_conv


def build_model(arch: str, seed: int) -> torch.nn.Module:
    from models.model import create_model
    torch.manual_seed(seed)
    with contextlib.redirect_stdout(io.StringIO()):
        model = create_model(arch, dict(HEADS), 256 if "dla" in arch else 64, pretrained=False)
    return model.eval()


def load_image(tree: Path, size: int, image: Path | None = None, batch: int = 1) -> torch.Tensor:
    """Upstream demo images (the tree's images/, in name order, repeated if fewer than batch; or one given image) as
    the network's input (batch, 3, size, size), float32, resized and normalised as upstream does (BGR)."""
    import numpy as np
    from PIL import Image
    paths = [image] if image else sorted((Path(tree) / "images").glob("*.jpg"))
    planes = []
    for i in range(batch):
        with Image.open(paths[i % len(paths)]) as img:
            rgb = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        planes.append(F.interpolate(rgb, size=(size, size), mode="bilinear", antialias=True, align_corners=False))
    bgr = torch.cat(planes)[:, [2, 1, 0]]
    return (bgr - torch.tensor(MEAN_BGR).view(1, 3, 1, 1)) / torch.tensor(STD_BGR).view(1, 3, 1, 1)


def dcn_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    pack = dcn_module().ModulatedDeformConv2dPack
    return [m for m in model.modules() if isinstance(m, pack)]


@torch.no_grad()
def calibrate_offsets(model, x, offset_std: float, mask_std: float, seed: int, passes: int = 2) -> list[dict]:
    """Give every conv_offset_mask seeded weights, scaled layer by layer so that on input x its offsets have
    standard deviation offset_std (pixels) and its mask logits mask_std; return the per-layer statistics."""
    layers = dcn_layers(model)
    gen = torch.Generator().manual_seed(seed)
    for layer in layers:
        conv = layer.conv_offset_mask
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
        conv.bias.zero_()
    stats: dict[int, dict] = {}

    def hook(i):
        def record(module, inputs, out):
            n_off = 2 * out.shape[1] // 3
            off = out[:, :n_off]
            frac = (off - off.round()).abs()
            stats[i] = dict(offset_std=float(off.std()), mask_std=float(out[:, n_off:].std()),
                            fractional=float((frac > 0.05).float().mean()), shape=tuple(inputs[0].shape),
                            cout=layers[i].out_channels)
        return record

    handles = [layer.conv_offset_mask.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    try:
        for _ in range(passes):  # a later layer's input depends on the earlier layers' offsets
            for i, layer in enumerate(layers):
                model(x)
                w = layer.conv_offset_mask.weight
                n_off = 2 * w.shape[0] // 3
                w[:n_off] *= offset_std / max(stats[i]["offset_std"], 1e-12)
                w[n_off:] *= mask_std / max(stats[i]["mask_std"], 1e-12)
        model(x)  # the statistics of the final weights
    finally:
        for h in handles:
            h.remove()
    return [stats[i] for i in range(len(layers))]


@torch.no_grad()
def calibrate_heatmap(model, x, hm_std: float) -> float:
    """Scale the hm head's last convolution so its logits spread with standard deviation hm_std around upstream's
    -2.19 bias on input x: a random network's heatmap is nearly flat, so its top peaks are near-ties that any
    rounding reorders; a trained one has distinct peaks. Returns the logits' standard deviation before."""
    last = [m for m in getattr(model, "hm").modules() if isinstance(m, torch.nn.Conv2d)][-1]
    before = float(model(x)[-1]["hm"].std())
    last.weight *= hm_std / max(before, 1e-12)
    return before


def zeros_dcn(x, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups):
    """Stands in for every DCN layer at the cost of a memset: timing the network with it times the rest."""
    ho = (x.shape[2] + 2 * padding[0] - dilation[0] * (weight.shape[2] - 1) - 1) // stride[0] + 1
    wo = (x.shape[3] + 2 * padding[1] - dilation[1] * (weight.shape[3] - 1) - 1) // stride[1] + 1
    return x.new_zeros(x.shape[0], weight.shape[0], ho, wo)


@contextlib.contextmanager
def use_dcn(impl):
    """Run the network's DCN layers through impl (same signature as the module's `_compute`); None = torchvision."""
    module = dcn_module()
    saved = module._compute
    if impl is not None:
        module._compute = impl
    try:
        yield
    finally:
        module._compute = saved


class KernelDCN:
    """The plugin's kernel (bench/dcn_ctypes.py) in place of torchvision's deform_conv2d, one configuration per shape."""

    def __init__(self, lib, allow_tf32: bool):
        self.lib, self.allow_tf32, self.configs = lib, allow_tf32, {}

    def __call__(self, x, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups):
        key = (tuple(x.shape), tuple(weight.shape), tuple(stride), tuple(padding), tuple(dilation), int(groups),
               int(deformable_groups), x.dtype)
        dcn = self.configs.get(key)
        if dcn is None:
            dcn = self.configs[key] = dcn_ctypes.DCN(
                self.lib, tuple(x.shape), weight.shape[0], k=tuple(weight.shape[2:]), stride=tuple(stride),
                pad=tuple(padding), dil=tuple(dilation), groups=int(groups), dg=int(deformable_groups), dtype=x.dtype,
                allow_tf32=self.allow_tf32)
        if bias is None:
            bias = weight.new_zeros(weight.shape[0])
        out = torch.empty(dcn.out_shape, dtype=x.dtype, device=x.device)
        return dcn(x.contiguous(), offset.contiguous(), mask.contiguous(), weight.contiguous(), bias.contiguous(), out)


@torch.no_grad()
def head_outputs(model, x) -> dict[str, torch.Tensor]:
    out = model(x)[-1]
    return {"hm": out["hm"].sigmoid(), "wh": out["wh"], "reg": out["reg"]}


def compare(ref: dict, cand: dict, k: int = TOPK) -> dict:
    """Per head: max |cand - ref| / max |ref|; peaks: how many of ref's top-k (class, position) peaks per image
    cand's top-k has (of: k x images), and the largest score difference on those."""
    res = {}
    for name, r in ref.items():
        c = cand[name].double()
        res[name] = float((c - r).abs().max() / r.abs().max()) if torch.isfinite(c).all() else float("inf")
    peaks = {}
    for tag, heads in (("ref", ref), ("cand", cand)):
        scores, inds, clses, _, _ = topk(nms(heads["hm"].double()), k)
        peaks[tag] = {(b, int(cl), int(i)): float(s) for b in range(scores.shape[0])
                      for s, i, cl in zip(scores[b], inds[b], clses[b])}
    common = peaks["ref"].keys() & peaks["cand"].keys()
    res["peaks"], res["of"] = len(common), len(peaks["ref"])
    res["score_diff"] = max((abs(peaks["ref"][p] - peaks["cand"][p]) for p in common), default=float("inf"))
    return res


# The kernel check's per-layer tolerances (bench/gpu_check.py): below these a network-level error passes even where
# it is more than twice torchvision's (both then tiny).
TOL = {"fp32": 1e-5, "tf32": 1e-3, "fp16": 1e-2}


def judge(ours: dict, theirs: dict, tol: float) -> list[str]:
    """Why the kernel's row fails against torchvision's in the same precision (empty: it passes)."""
    why = [f"{h} error {ours[h]:.2e} > max(2 x torchvision's {theirs[h]:.2e}, {tol:.0e})"
           for h in HEADS if not ours[h] <= max(2 * theirs[h], tol)]
    if ours["peaks"] < theirs["peaks"] - 5 * ours["of"] // TOPK:
        why.append(f"{ours['peaks']} of the reference's {ours['of']} top peaks found, torchvision {theirs['peaks']}")
    return why


@contextlib.contextmanager
def tf32(matmul: bool):
    """cuDNN convolutions always strict fp32 here; the matmul switch (torchvision's DCN GEMM) as asked."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, default=None, help="patched CenterNet tree (default: CENTERNET_TREE or "
                    "build/CenterNet, made by `make patch`)")
    ap.add_argument("--archs", default="resdcn_18,dla_34")
    ap.add_argument("--size", type=int, default=512, help="input height and width")
    ap.add_argument("--batch", type=int, default=1, help="images per forward")
    ap.add_argument("--image", type=Path, default=None, help="input image (default: the tree's first demo image)")
    ap.add_argument("--offset-std", type=float, default=2.0, help="offset standard deviation, pixels")
    ap.add_argument("--mask-std", type=float, default=1.5, help="mask logit standard deviation")
    ap.add_argument("--hm-std", type=float, default=2.0, help="heatmap logit standard deviation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lib", default=None, help="kernel library (default: build/dcn_kernel/libdcnv2_kernel.so)")
    ap.add_argument("--reps", type=int, default=20, help="timed graph replays")
    args = ap.parse_args()

    tree = upstream.import_tree(args.tree)
    lib = dcn_ctypes.load(args.lib)
    card = torch.cuda.get_device_name()
    print(f"card: {card}; input {args.batch}x3x{args.size}x{args.size}; offsets std {args.offset_std} px, mask logits std "
          f"{args.mask_std}; heads vs the network in float64 (torchvision DCN)")
    rows, failures = [], 0
    for arch in args.archs.split(","):
        model = build_model(arch, args.seed).cuda()
        x = load_image(tree, args.size, args.image, args.batch).cuda()
        with tf32(False):
            stats = calibrate_offsets(model, x, args.offset_std, args.mask_std, args.seed)
            calibrate_heatmap(model, x, args.hm_std)
        layers = ", ".join(f"{s['shape'][1]},{s['shape'][2]},{s['shape'][3]}->{s['cout']} (offset std "
                           f"{s['offset_std']:.2f}, {100 * s['fractional']:.0f} % fractional)" for s in stats)
        print(f"{arch}: {len(stats)} DCN layers: {layers}")
        ref = head_outputs(copy.deepcopy(model).double(), x.double())
        for prec in ("fp32", "tf32", "fp16"):
            net = copy.deepcopy(model).half() if prec == "fp16" else model
            inp = x.half() if prec == "fp16" else x
            res, times = {}, {}
            with tf32(prec == "tf32"):
                for name, impl in (("torchvision", None), ("ours", KernelDCN(lib, allow_tf32=prec != "fp32")),
                                   ("no DCN", zeros_dcn)):
                    with use_dcn(impl):
                        if name != "no DCN":
                            res[name] = compare(ref, head_outputs(net, inp))
                        if prec != "fp32":  # timed: fp16, and fp32 with TF32 DCN (the engine's defaults)
                            with torch.no_grad():
                                times[name] = graph_us(lambda: net(inp), 1, args.reps) / 1e3
            why = judge(res["ours"], res["torchvision"], TOL[prec])
            failures += bool(why)
            rows.append((arch, prec, res, times, why))
            print(f"{arch} {prec}: " + "; ".join(
                f"{n} hm {r['hm']:.1e} wh {r['wh']:.1e} reg {r['reg']:.1e} peaks {r['peaks']}/{r['of']} "
                f"max score diff {r['score_diff']:.1e}" + (f" forward {times[n]:.2f} ms" if n in times else "")
                for n, r in res.items()) + (f"; no DCN forward {times['no DCN']:.2f} ms" if times else "")
                + (f" FAIL: {'; '.join(why)}" if why else " ok"), flush=True)

    print(f"\nWhole network, DCN by torchvision / by the kernel; card: {card}; errors: max |x - x64| / max |x64| per "
          f"head; peaks: the float64 network's top-{TOPK} (class, position) peaks per image found; forward: CUDA-graph replay, "
          f"median of {args.reps}")
    print("(the DCN layers' share: the forward minus the same network with every DCN layer replaced by a zero fill)")
    print("| arch | precision | hm error tv / ours | wh error | reg error | peaks tv / ours | forward ms tv / ours | "
          "DCN layers us tv / ours | verdict |")
    print("|---|---|---|---|---|---|---|---|---|")
    for arch, prec, res, times, why in rows:
        tv, ours = res["torchvision"], res["ours"]
        fwd = f"{times['torchvision']:.2f} / {times['ours']:.2f}" if times else "-"
        dcn = (f"{1e3 * (times['torchvision'] - times['no DCN']):.0f} / {1e3 * (times['ours'] - times['no DCN']):.0f}"
               if times else "-")
        print(f"| {arch} | {prec} | {tv['hm']:.1e} / {ours['hm']:.1e} | {tv['wh']:.1e} / {ours['wh']:.1e} | "
              f"{tv['reg']:.1e} / {ours['reg']:.1e} | {tv['peaks']} / {ours['peaks']} of {ours['of']} | {fwd} | {dcn} | "
              f"{'FAIL: ' + '; '.join(why) if why else 'ok'} |")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
