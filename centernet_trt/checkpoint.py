"""Where a model's weights come from: a checkpoint loaded safely and strictly, or reproducible random weights.

Upstream's ``load_model`` unpickles anything and silently skips missing or mis-shaped parameters; here a
checkpoint is read with ``torch.load(weights_only=True)`` and must match the network key for key.
"""
from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path

import torch
from torch import nn

from .errors import UserError

# Buffers a checkpoint may lack without changing inference (PyTorch < 0.4.1 did not save them).
OPTIONAL_SUFFIXES = (".num_batches_tracked",)
RANDOM_RECIPE = 2          # bump when randomize() changes, so old ONNX files are not "reproduced" wrongly
# Random DCN offsets: a per-channel constant shift of a few pixels (bias) plus an input-driven part kept
# small: fp32 rounding there is amplified layer after layer (DLA-34 chains 16 DCNs). With 1.5 px of it,
# fp32 PyTorch alone differs from float64 by ~1e-4 relative; with these values by ~2e-6 (no DCN: ~1e-6).
OFFSET_STD_PX = 0.25       # spread of the input-driven part of offsets (and of mask logits)
OFFSET_BIAS_PX = 1.0       # spread of the constant part


def read_state_dict(path: str | Path, unsafe: bool = False) -> dict:
    """The tensors of an upstream-style checkpoint (``{'epoch', 'state_dict'}``) or a bare state dict."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found; pass MODEL=<path to .pth> or MODEL=random")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not unsafe)
    except pickle.UnpicklingError as exc:
        # weights_only refuses a pickle that names a class or function ("Unsupported global: GLOBAL x.y");
        # any other unpickling error means the bytes are not a checkpoint at all.
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found or "global" in str(exc).lower():
            what = found.group(1) if found else "a Python object"
            raise UserError(f"checkpoint {path} needs arbitrary code to unpickle ({what}); "
                            "if you trust its source, pass --unsafe-load") from None
        raise UserError(f"checkpoint {path} is not a readable PyTorch file (UnpicklingError); "
                        "pass a .pth saved by torch.save") from None
    except Exception as exc:  # junk bytes surface as anything from EOFError to IndexError
        raise UserError(f"checkpoint {path} is not a readable PyTorch file ({exc.__class__.__name__}); "
                        "pass a .pth saved by torch.save") from None
    state = obj.get("state_dict", obj.get("model", obj)) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f"checkpoint {path} holds no state dict (expected {{'state_dict': ...}} "
                        "or a dict of tensors); pass an upstream CenterNet .pth")
    # DataParallel saves "module.<name>"; upstream strips it too.
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def _mmcv_names(state: dict, own: dict) -> dict:
    """mmcv calls the offset/mask conv ``conv_offset``; the overlay DCN loads it under upstream's name."""
    renamed = {}
    for k, v in state.items():
        alt = k.replace(".conv_offset.", ".conv_offset_mask.")
        renamed[alt if alt != k and alt in own and k not in own else k] = v
    return renamed


def _listing(keys, limit=6) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_strict(model: nn.Module, state: dict, where: str = "checkpoint") -> None:
    """Copy ``state`` into ``model``; any missing, unexpected or mis-shaped key is an error naming them."""
    own = model.state_dict()
    state = _mmcv_names(state, own)
    missing = [k for k in own if k not in state and not k.endswith(OPTIONAL_SUFFIXES)]
    unexpected = [k for k in state if k not in own]
    shaped = [f"{k} {tuple(state[k].shape)}≠{tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shaped:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {_listing(unexpected)}")
        if shaped:
            parts.append(f"mis-shaped {len(shaped)}: {_listing(shaped, 4)}")
        raise UserError(f"{where} does not fit this arch/task ({'; '.join(parts)}); "
                        "pass the ARCH/TASK (and NUM_CLASSES) it was trained with, or the right MODEL")
    model.load_state_dict(state, strict=False)  # only OPTIONAL_SUFFIXES buffers may be missing here


def state_digest(model: nn.Module) -> str:
    """sha256 over the float32 state dict (names, shapes, bytes): proves two builds hold the same weights."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def dcn_modules(model: nn.Module) -> list[nn.Module]:
    """Modulated deformable convs: the modules that own the offset/mask conv (upstream's name)."""
    return [m for m in model.modules() if isinstance(getattr(m, "conv_offset_mask", None), nn.Conv2d)]


def _round_bf16(t: torch.Tensor) -> torch.Tensor:
    # Calibrated values are rounded to 8 mantissa bits, so run-to-run float64 reduction noise (thread
    # count, BLAS) cannot change a single float32 weight: a re-run with the same seed is bit-identical.
    return t.to(torch.float32).to(torch.bfloat16).to(torch.float32)


@torch.no_grad()
def randomize(model: nn.Module, seed: int, input_hw: tuple[int, int] = (128, 128)) -> None:
    """Give every parameter and BatchNorm statistic a random, well-scaled value, reproducibly from ``seed``.

    Convs get He-normal weights; BatchNorm statistics are then measured on random input of the export's
    size ``input_hw`` (float64, layer by layer in forward order) so activations stay O(1) through any depth
    (statistics from another size do not carry over: hourglass's 1x1 levels at 128 are 4x4 at 512); the DCN offset/mask convs (zero in
    upstream's init, which makes DCN a plain conv) give offsets of a few pixels (see OFFSET_*_PX).
    """
    gen = torch.Generator().manual_seed(int(seed))
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if module in bns:
                new = (torch.rand(p.shape, generator=gen) + 0.5) if name == "weight" else \
                    torch.randn(p.shape, generator=gen) * 0.2
            elif p.dim() > 1:
                new = torch.randn(p.shape, generator=gen) * (2.0 / p[0].numel()) ** 0.5
            else:
                new = torch.randn(p.shape, generator=gen) * 0.1
            p.copy_(new)
    # Per-channel draws for each BatchNorm's statistics (variance factor, mean fraction).
    jitter = {bn: (torch.rand(bn.running_var.shape, generator=gen).double() + 0.5,
                   torch.randn(bn.running_mean.shape, generator=gen).double() * 0.1) for bn in bns}
    x = torch.randn(1, 3, *input_hw, generator=gen, dtype=torch.float64)
    # One float64 pass in forward order: each BatchNorm and offset conv is scaled to the input it really
    # sees, with every earlier layer already final (deformable sampling included).
    hooks = [bn.register_forward_pre_hook(lambda bn, inp: _set_statistics(bn, inp[0], jitter[bn])) for bn in bns]
    hooks += [m.conv_offset_mask.register_forward_pre_hook(lambda conv, inp: _set_offset_conv(conv, inp[0], gen))
              for m in dcn_modules(model)]
    was_training = model.training
    model.double().eval()
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
        model.float()
        model.train(was_training)


def _set_offset_conv(conv, x, gen):
    """Offset/mask conv weights: input-driven spread OFFSET_STD_PX on this input, constant part OFFSET_BIAS_PX."""
    rms = float(x.pow(2).mean().sqrt())
    scale = _round_bf16(torch.tensor(OFFSET_STD_PX / (max(rms, 1e-3) * conv.weight[0].numel() ** 0.5)))
    conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen).double() * scale.double())
    conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen).double() * OFFSET_BIAS_PX)


def _set_statistics(bn, x, jitter):
    """Running stats scaled to this input: variance ~ its mean square pooled over channels and positions.

    Per-channel statistics would be estimated from very few samples at deep hourglass levels (1x1 at a
    128 input) and blow activations up on any other input; one pooled moment is stable. The running mean
    is a random fraction of that scale (the jitter tensor carries both draws).
    """
    power = _round_bf16(x.pow(2).mean()).double()   # round the one measured value before it fans out
    bn.running_mean.copy_(_round_bf16(jitter[1] * power.sqrt()).double())
    bn.running_var.copy_(_round_bf16(power * jitter[0] + 1e-6).double())
