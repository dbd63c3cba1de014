"""`centernet_trt.backends.Backend.run`: the batching every backend shares (chunks up to the model's
batch, padding to what it accepts, results cut back), checked against a per-image computation."""
from __future__ import annotations

import numpy as np
import pytest

from centernet_trt.backends import Backend


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
