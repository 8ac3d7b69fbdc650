"""backend_flags / strict_fp32 / cudnn_deterministic set PyTorch's numeric flags only inside the block."""
from __future__ import annotations

import warnings

import pytest
import torch

from maskpro_eval.runtime.timing import cudnn_deterministic
from maskpro_eval.runtime.timing import backend_flags, strict_fp32


def _flags():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = torch.backends
        return (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, b.cudnn.benchmark, b.cudnn.deterministic)


def test_flags_set_inside_and_restored_after_an_error():
    before = _flags()
    with pytest.raises(RuntimeError):
        with backend_flags(tf32=not before[1], cudnn_benchmark=not before[2]):
            assert _flags()[:3] == (not before[1], not before[1], not before[2])
            raise RuntimeError("inside")
    assert _flags() == before


def test_strict_fp32_and_deterministic():
    before = _flags()
    with backend_flags(tf32=True, cudnn_benchmark=True):
        with strict_fp32(), cudnn_deterministic():
            assert _flags() == (False, False, False, True)  # deterministic also turns benchmark off
        assert _flags()[:3] == (True, True, True)
        with strict_fp32(False), cudnn_deterministic(False):
            assert _flags()[:3] == (True, True, True)
    assert _flags() == before
