"""TMA implicit-GEMM 3x3 convolution (sampling.tma_conv) against PyTorch's conv2d, on the CPU through Triton's
interpreter (which models TMA's zero fill outside the tensor).

Not collected by the suite itself: Triton's interpreter must be on before ``triton`` is first imported, so
``tests/test_tma_conv.py`` runs this file in a fresh process with ``TRITON_INTERPRET=1``. By hand:
``TRITON_INTERPRET=1 pytest tests/tma_conv_cases.py``."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.unit

pytest.importorskip("triton", reason="pip install triton (test extra)")

from maskpro_eval.sampling import tma_conv as tc  # noqa: E402
from maskpro_eval.sampling.triton_loader import interpret  # noqa: E402
from tests.builders import tiny_unet  # noqa: E402

if not interpret():
    pytest.exit("run with TRITON_INTERPRET=1 set before Python starts (tests/test_tma_conv.py does)", returncode=3)


def _operands(n, c_in, c_out, h, w, seed, dtype=torch.float16):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c_in, h, w, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
    wt = (torch.randn(c_out, c_in, 3, 3, generator=g) / (3 * c_in ** 0.5)).to(dtype)
    return x, wt, torch.randn(c_out, generator=g).to(dtype)


def _ref(x, wt, b):
    """conv2d in float64 (the independent reference)."""
    return F.conv2d(x.double(), wt.double(), b.double(), padding=1)


def _ulps(y, ref):
    """max |y - ref| in units of the float16 rounding of max |ref| (one rounding of the output is <= 0.5)."""
    return float((y.double() - ref).abs().max() / (ref.abs().max() * 2.0 ** -11))


# the DDPM CIFAR-10 shapes in miniature: 32x32-like (whole rows per box, several rows), 8x8 and 4x4 (several
# samples per box), C_in not a multiple of BK (a K block reaching into the next tap's weights, zero-filled input),
# a batch that is not a multiple of the samples per box, and a width that is not a power of two (5x7)
@pytest.mark.parametrize("n,c_in,c_out,h,w,cfg", [
    (2, 32, 32, 16, 16, tc.TmaConvConfig(64, 32, 32, 4, 2)),
    (3, 16, 64, 8, 8, tc.TmaConvConfig(128, 32, 16, 4, 2)),
    (5, 32, 32, 4, 4, tc.TmaConvConfig(64, 32, 32, 4, 2)),
    (2, 24, 16, 8, 8, tc.TmaConvConfig(64, 16, 16, 4, 2)),
    (2, 16, 16, 5, 7, tc.TmaConvConfig(32, 16, 16, 4, 2)),
])
@pytest.mark.parametrize("variant", ["4d", "padded"])
def test_conv3x3_tma_equals_conv2d(n, c_in, c_out, h, w, cfg, variant):
    x, wt, b = _operands(n, c_in, c_out, h, w, seed=c_in + h)
    fn = tc.conv3x3_tma if variant == "4d" else tc.conv3x3_tma_padded
    y = fn(x, tc.pack_weight(wt), b, config=cfg)
    assert y.shape == (n, c_out, h, w) and y.dtype == x.dtype
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert _ulps(y, _ref(x, wt, b)) <= 1.0


def test_residual_is_added_in_the_epilogue():
    x, wt, b = _operands(2, 16, 32, 8, 8, seed=3)
    r = torch.randn(2, 32, 8, 8).half().contiguous(memory_format=torch.channels_last)
    y = tc.conv3x3_tma(x, tc.pack_weight(wt), b, residual=r, config=tc.TmaConvConfig(64, 32, 16, 4, 2))
    assert _ulps(y, _ref(x, wt, b) + r.double()) <= 1.0


def test_an_nchw_input_is_accepted():
    x, wt, b = _operands(2, 16, 16, 8, 8, seed=4)
    xc = x.contiguous()  # NCHW memory: copied to channels-last inside
    ref = _ref(x, wt, b)
    cfg = tc.TmaConvConfig(64, 16, 16, 4, 2)
    assert _ulps(tc.conv3x3_tma(xc, tc.pack_weight(wt), b, config=cfg), ref) <= 1.0
    assert _ulps(tc.conv3x3_tma_padded(xc, tc.pack_weight(wt), b, config=cfg), ref) <= 1.0


def test_bad_operands_are_refused_with_the_reason():
    x, wt, b = _operands(1, 12, 16, 4, 4, seed=5)
    with pytest.raises(tc.TmaConvError, match="multiples of 8"):
        tc.conv3x3_tma(x, tc.pack_weight(wt), b)
    x, wt, b = _operands(1, 16, 16, 4, 4, seed=5)
    with pytest.raises(tc.TmaConvError, match="does not match"):
        tc.conv3x3_tma(x, tc.pack_weight(wt)[:, :-8], b)
    with pytest.raises(tc.TmaConvError, match="smaller than one padded image row"):
        tc.conv3x3_tma(torch.randn(1, 16, 2, 64).half(), tc.pack_weight(wt), b, config=tc.TmaConvConfig(32, 16, 16))


def test_install_on_a_unet_matches_the_original_and_keeps_what_it_cannot_run():
    unet = tiny_unet().half().eval()
    ref = copy.deepcopy(unet)
    report = tc.install_tma_conv(unet, tune=False)
    # conv_in (3 input channels) and conv_out (3 output channels) are not TMA-able; every other 3x3 is replaced
    assert set(report["kept"]) >= {"conv_in", "conv_out"}
    assert all("multiples of 8" in r or "kernel" in r or "stride" in r for r in report["kept"].values())
    assert report["replaced"] and report["max_rel_error"] <= tc.TOLERANCE[torch.float16]
    x = torch.randn(2, 3, 32, 32).half()
    t = torch.tensor([10, 500])
    with torch.no_grad():
        a, b = unet(x, t).sample.double(), ref(x, t).sample.double()
    assert float((a - b).abs().max() / b.abs().max()) < 5e-3


def test_install_restores_the_unet_when_the_check_fails(monkeypatch):
    unet = tiny_unet().half().eval()
    names = [n for n, m in unet.named_modules() if type(m) is torch.nn.Conv2d]
    monkeypatch.setattr(tc, "conv3x3_tma_padded", lambda x, wk, b, config=None, padded=None:
                        torch.zeros(padded.shape[0], wk.shape[0], padded.shape[1] - 2, padded.shape[2] - 2,
                                    dtype=padded.dtype))
    with pytest.raises(tc.TmaConvError, match="model left unpatched"):
        tc.install_tma_conv(unet, tune=False)
    assert [n for n, m in unet.named_modules() if type(m) is torch.nn.Conv2d] == names


def test_the_tile_search_drops_a_candidate_that_disagrees_with_conv2d(monkeypatch):
    """tune_tma_conv checks every candidate against conv2d before timing it: a wrong one gets inf and is never
    chosen; when every candidate is wrong the search refuses."""
    x, wt, b = _operands(1, 16, 16, 4, 4, seed=6)
    xp, wk = tc.pad_input(x), tc.pack_weight(wt)
    good, bad = tc.TmaConvConfig(32, 16, 16, 4, 2), tc.TmaConvConfig(64, 16, 16, 4, 2)
    launch = tc._launch_padded

    def faulty(xp_, wk_, b_, cfg):
        y = launch(xp_, wk_, b_, cfg)
        return y * 1.5 if cfg == bad else y
    monkeypatch.setattr(tc, "_launch_padded", faulty)
    best, times = tc.tune_tma_conv(xp, wk, b, candidates=(bad, good))
    assert best == good and times[bad] == float("inf") and times[good] < float("inf")
    assert tc._TUNED[tc._shape_key(xp, wk)] == good
    with pytest.raises(tc.TmaConvError, match="matches cuDNN"):
        tc.tune_tma_conv(xp, wk, b, candidates=(bad,))


def test_a_float32_conv_is_refused():
    conv = torch.nn.Conv2d(16, 16, 3, padding=1)
    with pytest.raises(tc.TmaConvError, match="float16/bfloat16"):
        tc.TmaConv2d(conv)
