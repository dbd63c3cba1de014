"""Which archs and tasks we export, in which head order, and everything else read from upstream's own opts.

Heads, head_conv, default input size, mean/std, down ratio and the input stride come from the patched
tree's ``opts.py``, the ONNX output order from the overlay's ``models/flat_heads.py`` (``HEAD_ORDER``);
only the lists of supported names are ours.
"""
from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass

from .errors import UserError

ARCHS = ("dla_34", "dlav0_34", "resdcn_18", "resdcn_101", "res_18", "hourglass")
TASKS = ("ctdet", "multi_pose")
DEFAULT_NUM_CLASSES = {"ctdet": 80, "multi_pose": 1}


@dataclass
class ModelConfig:
    arch: str
    task: str
    heads: list            # [(name, channels)] in ONNX output order
    upstream_heads: dict   # the dict upstream builds the network from (its own key order)
    head_conv: int
    input_h: int
    input_w: int
    mean: list
    std: list
    down_ratio: int
    stride: int            # input sides must be multiples of this (upstream's opt.pad + 1)
    num_classes: int
    num_joints: int


def validate(arch: str, task: str) -> None:
    if arch not in ARCHS:
        raise UserError(f"unknown ARCH {arch!r}; choose one of: {', '.join(ARCHS)}")
    if task not in TASKS:
        raise UserError(f"unknown TASK {task!r}; choose one of: {', '.join(TASKS)}")


def parse_input_size(text: str | None) -> tuple[int, int] | None:
    """``"512"`` or ``"384x640"`` (H x W) → (h, w); None keeps upstream's default."""
    if text is None or str(text).strip() == "":
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+))?\s*", str(text))
    if not m or int(m.group(1)) <= 0 or (m.group(2) and int(m.group(2)) <= 0):
        raise UserError(f"input size {text!r} is not HxW; write it as e.g. INPUT=512x512, INPUT=512 or INPUT=dynamic")
    h = int(m.group(1))
    return h, int(m.group(2) or h)


def _upstream_opt(arch: str, task: str):
    """Run upstream's ``opts().init`` for (task, arch) quietly (it prints training chatter)."""
    from opts import opts  # the patched tree's src/lib, put on sys.path by upstream.import_tree

    with contextlib.redirect_stdout(io.StringIO()):
        return opts().init(["--task", task, "--arch", arch])  # --task: patches/0002


def config(arch: str, task: str, num_classes: int | None = None,
           input_hw: tuple[int, int] | None = None) -> ModelConfig:
    """The model description for (arch, task); needs the patched tree imported."""
    validate(arch, task)
    opt = _upstream_opt(arch, task)
    heads = dict(opt.heads)
    if num_classes is not None:
        if task != "ctdet" and num_classes != opt.num_classes:
            raise UserError(f"{task} has {opt.num_classes} class(es) upstream; drop --num-classes / NUM_CLASSES")
        if num_classes <= 0:
            raise UserError(f"--num-classes must be positive, got {num_classes}")
        heads["hm"] = num_classes
    from models.flat_heads import head_order  # ctdet: hm, reg, wh (the recipe's C++ runtime reads by position)

    order = head_order(task, heads)
    stride = int(opt.pad) + 1
    h, w = input_hw or (int(opt.input_h), int(opt.input_w))
    if h % stride or w % stride:
        raise UserError(f"input size {h}x{w} does not suit {arch}: both sides must be multiples of {stride}; "
                        f"use e.g. INPUT={max(stride, h // stride * stride)}x{max(stride, w // stride * stride)}")
    return ModelConfig(
        arch=arch, task=task, heads=[(n, int(heads[n])) for n in order], upstream_heads=heads,
        head_conv=int(opt.head_conv), input_h=h, input_w=w,
        mean=[float(v) for v in opt.mean], std=[float(v) for v in opt.std],
        down_ratio=int(opt.down_ratio), stride=stride, num_classes=int(heads["hm"]),
        num_joints=int(heads["hps"]) // 2 if "hps" in heads else 0)


def build(cfg: ModelConfig):
    """The upstream network (offline: no ImageNet download), in eval mode."""
    from models.model import create_model

    with contextlib.redirect_stdout(io.StringIO()):
        model = create_model(cfg.arch, dict(cfg.upstream_heads), cfg.head_conv, pretrained=False)
    return model.eval()


def flat(model, cfg: ModelConfig):
    """Wrap the network so it returns a tuple of head tensors in ONNX output order (last stack)."""
    from models.flat_heads import FlatHeads

    return FlatHeads(model, [n for n, _ in cfg.heads]).eval()


def num_classes_in(state_dict: dict) -> int | None:
    """Classes of a ctdet checkpoint: output channels of the last ``hm`` layer (upstream's key names)."""
    def natural(key):
        return [int(p) if p.isdigit() else -1 for p in key.split(".")[1:-1]]
    biases = [k for k in state_dict if k.startswith("hm.") and k.endswith(".bias")]
    if not biases:
        return None
    return int(state_dict[max(biases, key=natural)].shape[0])
