"""The recipe's `_iter_filter` fix as a runtime shim: converts ints on PyTorch 1.0/1.1, inert elsewhere."""
from __future__ import annotations

import types

import pytest
import torch
import torch.autograd.function as function_module

from centernet_trt import compat


def _old_function_module() -> types.ModuleType:
    """A stand-in for PyTorch 1.1's torch/autograd/function.py: its `_iter_filter` and one iterator built
    from it, written as that release has them."""
    module = types.ModuleType("fake_torch_autograd_function")

    def _iter_filter(condition, allow_unknown=False, condition_msg=None, conversion=None):
        def _iter(obj):
            if conversion is not None:
                obj = conversion(obj)
            if condition(obj):
                yield obj
            elif obj is None:
                return
            elif isinstance(obj, (list, tuple)):
                for o in obj:
                    for var in _iter(o):
                        yield var
            elif allow_unknown:
                yield obj
            else:
                raise ValueError("Auto nesting doesn't know how to process an input object of type "
                                 + type(obj).__name__ + (". Accepted types: " + condition_msg if condition_msg else ""))
        return _iter

    module._iter_filter = _iter_filter
    module._iter_tensors = _iter_filter(lambda x: isinstance(x, torch.Tensor), condition_msg="Tensors")
    return module


@pytest.mark.parametrize("version,affected", [("1.0.1", True), ("1.1.0", True), ("1.2.0", False),
                                              ("2.14.1+cu130", False), ("1.10.0", False)])
def test_version_gate(version, affected):
    assert compat.needs_iter_filter_fix(version) is affected


def test_shim_converts_int_arguments_on_old_torch():
    module = _old_function_module()
    t = torch.ones(2)
    with pytest.raises(ValueError, match="int"):
        list(module._iter_tensors((t, 3, [1, None])))
    assert compat.apply_iter_filter_fix(module, "1.1.0") is True
    got = list(module._iter_tensors((t, 3, [1, None])))
    assert got[0] is t and [int(x) for x in got[1:]] == [3, 1] and all(torch.is_tensor(x) for x in got)
    with pytest.raises(ValueError, match="str"):  # other unknown types still fail as before
        list(module._iter_tensors(("nope",)))
    assert compat.apply_iter_filter_fix(module, "1.1.0") is False  # applied once only


def test_shim_does_nothing_on_new_torch_versions():
    module = _old_function_module()
    before = dict(vars(module))
    assert compat.apply_iter_filter_fix(module, "1.2.0") is False
    assert vars(module) == before


def test_apply_export_shims_is_inert_on_this_torch():
    assert not compat.needs_iter_filter_fix(torch.__version__)
    before = dict(vars(function_module))
    assert compat.apply_export_shims() == []
    assert vars(function_module) == before
