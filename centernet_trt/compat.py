"""Version-gated runtime shims for old PyTorch, applied at export time (never an edit of site-packages).

The CenterNet->TensorRT recipe edits ``torch/autograd/function.py`` on PyTorch 1.0/1.1 so that
``_iter_filter`` turns plain ``int`` arguments of autograd Functions (stride, padding, ... of DCNv2) into
tensors instead of raising "Auto nesting doesn't know how to process an input object of type int" while
tracing for ONNX. ``apply_export_shims()`` makes the same change in memory, only on those versions; on
any other PyTorch it changes nothing and returns False.
"""
from __future__ import annotations

import re
import types

AFFECTED = ((1, 0), (1, 1))


def torch_version_tuple(version: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def needs_iter_filter_fix(version: str) -> bool:
    return torch_version_tuple(version) in AFFECTED


def _int_tolerant(original_filter):
    """``_iter_filter`` as patched by the recipe: ints become 0-d tensors, everything else as before."""
    import torch

    def _iter_filter(condition, allow_unknown=False, condition_msg=None, conversion=None):
        fallback = original_filter(condition, allow_unknown, condition_msg, None)

        def _iter(obj):
            if conversion is not None:
                obj = conversion(obj)
            if condition(obj):
                yield obj
            elif isinstance(obj, int) and not isinstance(obj, bool):
                yield torch.tensor(obj)
            elif isinstance(obj, (list, tuple)):
                for item in obj:
                    yield from _iter(item)
            else:  # None, allow_unknown and the error message stay the original's
                yield from fallback(obj)

        return _iter

    _iter_filter.centernet_trt_shim = True
    return _iter_filter


def _filter_args(iterator):
    """(condition, allow_unknown, condition_msg, conversion) captured by an ``_iter_filter`` closure."""
    cells = dict(zip(iterator.__code__.co_freevars, (c.cell_contents for c in iterator.__closure__ or ())))
    if "condition" not in cells:
        return None
    return (cells["condition"], cells.get("allow_unknown", False), cells.get("condition_msg"),
            cells.get("conversion"))


def apply_iter_filter_fix(function_module: types.ModuleType, version: str) -> bool:
    """Install the int-tolerant ``_iter_filter`` in ``function_module`` (``torch.autograd.function``) and
    rebuild the module-level iterators made from it (``_iter_tensors``, ...). Returns whether it changed."""
    original = getattr(function_module, "_iter_filter", None)
    if not needs_iter_filter_fix(version) or original is None or getattr(original, "centernet_trt_shim", False):
        return False
    patched = _int_tolerant(original)
    template = original(lambda _: True).__code__
    for name, value in list(vars(function_module).items()):
        if isinstance(value, types.FunctionType) and value.__code__ is template:
            args = _filter_args(value)
            if args is not None:
                setattr(function_module, name, patched(*args))
    function_module._iter_filter = patched
    return True


def apply_export_shims() -> list[str]:
    """Apply every shim this PyTorch needs before ``torch.onnx.export``; names of those applied."""
    import torch
    import torch.autograd.function as function_module

    applied = []
    if apply_iter_filter_fix(function_module, torch.__version__):
        applied.append("_iter_filter")
    return applied
