"""`centernet_trt.backends.Backend.run`: the batching every backend shares (chunks up to the model's
batch, padding to what it accepts, results cut back), checked against a per-image computation."""
from __future__ import annotations

import numpy as np
import pytest

from centernet_trt.backends import Backend
from centernet_trt.errors import UserError


class Recorder(Backend):
    """Per image: the channel sums; records the batch size of every call, refuses sizes a real model would."""
    output_names = ["s"]

    def __init__(self, fixed=None, lo=1, hi=None):
        self.fixed_batch, self.min_batch, self.max_batch = fixed, lo, hi
        self.calls = []

    def _run(self, batch):
        n = len(batch)
        self.calls.append(n)
        assert n == self.fixed_batch if self.fixed_batch else self.min_batch <= n <= (self.max_batch or n)
        return {"s": batch.sum(axis=(2, 3))}


@pytest.mark.parametrize("kw,n,calls", [
    ({"fixed": 4}, 6, [4, 4]),            # fixed batch: last chunk padded
    ({"fixed": 1}, 3, [1, 1, 1]),
    ({"lo": 2, "hi": 3}, 7, [3, 3, 2]),   # dynamic profile 2..3: a lone last image is padded to 2
    ({"lo": 2, "hi": 3}, 1, [2]),
    ({"hi": 8}, 5, [5]),
])
def test_run_chunks_pads_and_cuts_back(kw, n, calls):
    x = np.random.default_rng(n).standard_normal((n, 3, 4, 4)).astype(np.float32)
    backend = Recorder(**kw)
    out = backend.run(x)
    assert backend.calls == calls
    np.testing.assert_array_equal(out["s"], x.sum(axis=(2, 3)))


def test_dynamic_size_checks_stride_and_engine_profile():
    """A dynamic-H/W backend takes multiples of the stride inside its (engine) profile, and says why not."""
    backend = Recorder()
    backend.stride, backend.hw_range = 32, ((64, 64), (128, 256))
    backend.meta = type("Meta", (), {"arch": "resdcn_18"})()
    assert backend.dynamic_hw
    assert backend.run(np.zeros((1, 3, 64, 256), np.float32))["s"].shape == (1, 3)
    with pytest.raises(UserError, match="input 64x80 is not a multiple of resdcn_18's stride 32"):
        backend.run(np.zeros((1, 3, 64, 80), np.float32))
    with pytest.raises(UserError, match="outside the engine's profile 64x64 to 128x256.*HW=min:opt:max"):
        backend.run(np.zeros((1, 3, 160, 64), np.float32))
    backend.input_hw = (64, 64)   # a fixed-size model: only its own size
    assert not backend.dynamic_hw
    with pytest.raises(UserError, match="takes input width 64.*make onnx INPUT=dynamic"):
        backend.run(np.zeros((1, 3, 64, 96), np.float32))
