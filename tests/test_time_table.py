"""The time embedding once per DDIM step (sampling.time_table): the patched sampler gives the unpatched one's
images, the user's model is left alone, and the install check refuses a UNet it cannot stand in for."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from maskpro_eval.sampling.fast import FastDDIMSampler
from maskpro_eval.sampling.time_table import TimeTableError, TimeTableProj, install_time_table
from tests.builders import tiny_unet

STEPS = 6


def _denoise(sampler, n=5):
    return sampler.denoise(sampler.noise(list(range(n))).to(sampler.device))


def test_time_table_sampler_matches_the_per_row_time_embedding():
    unet = tiny_unet(seed=1)
    plain = FastDDIMSampler(unet, steps=STEPS, seed=0, batch_size=5, dtype="float32", device="cpu")
    table = FastDDIMSampler(unet, steps=STEPS, seed=0, batch_size=5, dtype="float32", device="cpu", time_table=True)
    projs = [m for m in table.model.modules() if isinstance(m, TimeTableProj)]
    assert len(projs) == sum(1 for n, _ in unet.named_modules() if n.endswith("time_emb_proj"))
    assert len({p.index.data_ptr() for p in projs}) == 1                     # one shared step index
    assert not any(isinstance(m, TimeTableProj) for m in unet.modules())     # the user's model untouched
    a, b = _denoise(plain), _denoise(table)
    assert torch.allclose(a, b, atol=1e-5, rtol=0), float((a - b).abs().max())
    ia, ib = plain.images(5), table.images(5)
    assert np.abs(ia.astype(int) - ib.astype(int)).max() <= 1 and (ia == ib).mean() > 0.99
    assert table.protocol()["time_table"] is True and "time_table" not in plain.protocol()


def test_time_table_rows_follow_the_step():
    unet = tiny_unet(seed=2).eval()
    timesteps = [999, 500, 1]
    rows, index = install_time_table(unet, timesteps)
    x = torch.randn(3, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    ref = tiny_unet(seed=2).eval()
    for t in timesteps:
        index.fill_(rows[t])
        with torch.no_grad():
            got = unet(x, torch.full((3,), t), return_dict=False)[0]
            want = ref(x, torch.full((3,), t), return_dict=False)[0]
        assert torch.allclose(got, want, atol=1e-5, rtol=0), t


def test_time_table_refuses_what_it_cannot_replace(monkeypatch):
    from diffusers import UNet2DModel
    cls = UNet2DModel(sample_size=16, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                      down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                      num_class_embeds=3).eval()
    with pytest.raises(TimeTableError, match="class embedding"):
        install_time_table(cls, [10, 20])
    # the equivalence check can fail: a table of wrong rows is refused and the model restored
    import maskpro_eval.sampling.time_table as tt
    unet = tiny_unet(seed=1).eval()
    real = tt._projected_rows
    monkeypatch.setattr(tt, "_projected_rows", lambda u, ts: {k: torch.zeros_like(v) for k, v in real(u, ts).items()})
    with pytest.raises(TimeTableError, match="differs from the original"):
        install_time_table(unet, [10, 20])
    assert not any(isinstance(m, TimeTableProj) for m in unet.modules())
