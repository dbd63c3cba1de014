"""Export wrapper: any CenterNet network as a module returning a flat tuple of head tensors.

Upstream networks return ``[dict(head -> tensor)]`` (hourglass: one dict per stack). ONNX/TensorRT consumers
read outputs by position, so export wraps the network in ``FlatHeads`` with a declared head order; the
network itself (and its dict forward used by upstream's demo/test) is unchanged.
"""
from __future__ import annotations

from torch import nn

# Documented output order per task (the seed recipe's C++ runtime reads ctdet as hm, reg, wh).
HEAD_ORDER = {
    "ctdet": ("hm", "reg", "wh"),
    "multi_pose": ("hm", "wh", "hps", "reg", "hm_hp", "hp_offset"),
}


def head_order(task: str, heads) -> list[str]:
    """The declared order for ``task`` restricted to the heads the model has (e.g. no ``reg`` with
    ``--not_reg_offset``); heads of an unknown task keep the model's own order."""
    if task not in HEAD_ORDER:
        return list(heads)
    extra = [h for h in heads if h not in HEAD_ORDER[task]]
    if extra:
        raise ValueError(f"heads {extra} are not in the declared {task} order {HEAD_ORDER[task]}")
    return [h for h in HEAD_ORDER[task] if h in heads]


class FlatHeads(nn.Module):
    """``FlatHeads(model, head_order)(x)`` -> tuple of the LAST output dict's tensors in ``head_order``."""

    def __init__(self, model: nn.Module, head_order):
        super().__init__()
        self.model = model
        self.head_order = tuple(head_order)
        known = getattr(model, "heads", None)
        if known is not None:
            missing = [h for h in self.head_order if h not in known]
            if missing:
                raise ValueError(f"model has no heads {missing}; it has {list(known)}")

    def forward(self, x):
        out = self.model(x)[-1]  # hourglass: the last stack is what upstream's detectors use
        return tuple(out[h] for h in self.head_order)
