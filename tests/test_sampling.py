"""Sample generation: determinism, seeding rule, schedulers, quantisation, resumable store."""
from __future__ import annotations

import base64
import io
import json
import os

import numpy as np
import pytest
import torch

from maskpro_eval.sampling.images import make_grid, png_base64, save_png, to_uint8
from maskpro_eval.sampling.store import CorruptChunkWarning, SampleStore, SampleStoreIncompleteError, SampleStoreMismatchError
from maskpro_eval.sampling.config import SamplingConfig, SamplingError, make_scheduler, protocol_metadata
from maskpro_eval.sampling.standard import generate
from maskpro_eval.sampling.fill_store import generate_to_store
from maskpro_eval.sampling.unet_io import model_fingerprint
from maskpro_eval.sampling.noise import noise_seed, sample_generators, sample_noise

from .builders import half_precision_on_cpu_ok, tiny_unet

pytestmark = pytest.mark.usefixtures("one_torch_thread")
STEPS = 5


@pytest.fixture(scope="module")
def unet():
    return tiny_unet()


class CountingUNet(torch.nn.Module):
    """Wraps a UNet; counts forward calls and optionally raises after ``fail_after`` calls."""

    def __init__(self, inner, fail_after: int | None = None):
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.fail_after = fail_after

    @property
    def config(self):
        return self.inner.config

    def forward(self, x, t, **kw):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("simulated interruption")
        self.calls += 1
        return self.inner(x, t, **kw)


SAMPLERS = {
    "ddim_eta0": dict(sampler="ddim", num_inference_steps=STEPS, eta=0.0),
    "ddim_eta1": dict(sampler="ddim", num_inference_steps=STEPS, eta=1.0),
    "ddpm": dict(sampler="ddpm", num_inference_steps=STEPS),
}


def cfg(batch_size=8, seed=0, kind="ddim_eta0", **kw):
    return SamplingConfig(batch_size=batch_size, seed=seed, **{**SAMPLERS[kind], **kw})


# ----------------------------------------------------------------------------------- quantisation
def test_quantisation_convention_exact():
    x = torch.tensor([-1.0, 1.0, 0.0, -2.0, 3.0, 0.5, -0.5, 127.4 / 127.5 - 128 / 127.5,
                      (127.5 - 128) / 127.5, float("nan")])
    # (x*127.5+128).clamp(0,255).to(uint8): -1->0.5->0, 1->255.5->255, 0->128, 0.5->191.75->191,
    # -0.5->64.25->64, x*127.5+128=127.4 -> 127, x=-1/255 -> 127.5 -> 127 ... NaN -> 0 (documented)
    expected = [0, 255, 128, 0, 255, 191, 64, 127, 127, 0]
    got = to_uint8(x.view(1, 1, 1, -1), channels_last=False).reshape(-1)
    assert got.dtype == np.uint8
    assert got.tolist() == expected
    ref = ((x[:-1] * 127.5 + 128).clamp(0, 255)).to(torch.uint8).tolist()
    assert got[:-1].tolist() == ref
    # bf16 input quantised in float32, same formula
    xb = torch.tensor([0.25, -0.75], dtype=torch.bfloat16)
    assert to_uint8(xb.view(1, 1, 1, 2), channels_last=False).reshape(-1).tolist() == [159, 32]


def test_to_uint8_layout():
    x = torch.zeros(2, 3, 4, 5)
    x[1, 2, 3, 4] = 1.0
    u = to_uint8(x)
    assert u.shape == (2, 4, 5, 3) and u[1, 3, 4, 2] == 255 and u[0, 0, 0, 0] == 128
    assert to_uint8(x[0]).shape == (4, 5, 3)


def test_grid_png_base64(tmp_path):
    from PIL import Image
    imgs = np.random.default_rng(0).integers(0, 256, (5, 4, 6, 3), dtype=np.uint8)
    g = make_grid(imgs, nrow=3, padding=1, pad_value=7)
    assert g.shape == (2 * 5 + 1, 3 * 7 + 1, 3) and g.dtype == np.uint8
    np.testing.assert_array_equal(g[1:5, 1:7], imgs[0])
    np.testing.assert_array_equal(g[6:10, 8:14], imgs[4])
    assert (g[0] == 7).all() and (g[6:10, 15:21] == 7).all()  # empty 6th cell is padding
    p = save_png(tmp_path / "sub" / "g.png", g)
    np.testing.assert_array_equal(np.asarray(Image.open(p)), g)
    b = png_base64(imgs, nrow=3)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(b)))), make_grid(imgs, 3))
    with pytest.raises(ValueError):
        make_grid(imgs.astype(np.float32))


# -------------------------------------------------------------------------------------- noise rule
def test_noise_seed_rule():
    s = np.random.SeedSequence(entropy=7, spawn_key=(5,)).generate_state(1, dtype=np.uint64)[0]
    assert noise_seed(7, 5) == int(s)
    # = the index-th child of SeedSequence(seed)
    child = np.random.SeedSequence(7).spawn(6)[5]
    assert noise_seed(7, 5) == int(child.generate_state(1, dtype=np.uint64)[0])
    g = torch.Generator().manual_seed(noise_seed(7, 5))
    ref = torch.randn((1, 3, 4, 4), generator=g)
    np.testing.assert_array_equal(sample_noise(7, [5], (3, 4, 4)).numpy(), ref.numpy())
    full = sample_noise(7, range(8), (3, 4, 4))
    np.testing.assert_array_equal(sample_noise(7, [6, 2], (3, 4, 4)).numpy(), full[[6, 2]].numpy())
    assert not torch.equal(sample_noise(8, range(8), (3, 4, 4)), full)
    assert len({noise_seed(0, i) for i in range(1000)} | {noise_seed(1, i) for i in range(1000)}) == 2000


def test_list_of_generators_gives_per_sample_step_noise():
    """diffusers' randn_tensor with a list of CPU generators draws (1, ...) per generator (0.42)."""
    from diffusers.utils.torch_utils import randn_tensor
    gens = sample_generators(3, [0, 1, 2])
    got = randn_tensor((3, 2, 4, 4), generator=gens, device=torch.device("cpu"), dtype=torch.float32)
    for k, i in enumerate([0, 1, 2]):
        g = torch.Generator().manual_seed(noise_seed(3, i))
        np.testing.assert_array_equal(got[k:k + 1].numpy(), torch.randn((1, 2, 4, 4), generator=g).numpy())


# -------------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("kind", list(SAMPLERS))
def test_batch_size_and_chunking_invariance(unet, kind):
    ref = generate(unet, cfg(8, kind=kind), count=8, progress=False)
    assert ref.shape == (8, 16, 16, 3) and ref.dtype == np.uint8
    assert ref.std() > 10  # not a constant image
    for bs in (1, 3):
        np.testing.assert_array_equal(generate(unet, cfg(bs, kind=kind), count=8, progress=False), ref)
    pieces = [generate(unet, cfg(8, kind=kind), start=s, count=c, progress=False)
              for s, c in ((0, 3), (3, 1), (4, 4))]
    np.testing.assert_array_equal(np.concatenate(pieces), ref)
    other = generate(unet, cfg(8, seed=1, kind=kind), count=8, progress=False)
    assert not np.array_equal(other, ref)
    for k in range(8):  # every sample differs under another seed
        assert not np.array_equal(other[k], ref[k])


def test_indices_subset_equals_slice(unet):
    c = cfg(4, kind="ddim_eta1")
    full = generate(unet, c, indices=range(10), progress=False)
    np.testing.assert_array_equal(generate(unet, c, indices=[5, 6, 7, 8, 9], progress=False), full[5:10])
    np.testing.assert_array_equal(generate(unet, c, start=5, count=5, progress=False), full[5:10])
    np.testing.assert_array_equal(generate(unet, c, indices=np.array([9, 2]), progress=False), full[[9, 2]])
    with pytest.raises(SamplingError):
        generate(unet, c, indices=[1], start=0, count=1, progress=False)


def test_ddpm_and_ddim_differ_and_eta_matters(unet):
    a = generate(unet, cfg(4, kind="ddim_eta0"), count=4, progress=False)
    b = generate(unet, cfg(4, kind="ddim_eta1"), count=4, progress=False)
    c = generate(unet, cfg(4, kind="ddpm"), count=4, progress=False)
    assert not np.array_equal(a, b) and not np.array_equal(a, c)


@half_precision_on_cpu_ok
def test_bfloat16_runs(unet):
    out = generate(unet, cfg(4, dtype="bf16", num_inference_steps=2), count=4, progress=False)
    assert out.shape == (4, 16, 16, 3) and out.dtype == np.uint8
    assert next(unet.parameters()).dtype == torch.float32  # weights untouched


def test_progress_bar(unet, capsys):
    from maskpro_eval.runtime.progress import progress_sink
    with progress_sink(None):  # the default tqdm bar (the pytest plugin installs its own sink in runs)
        generate(unet, cfg(2, num_inference_steps=1), count=4, progress=True)
    err = capsys.readouterr().err
    assert "img/s" in err and "/4 " in err and "ddim 1 steps" in err  # leave=False: the finished bar is cleared
    generate(unet, cfg(2, num_inference_steps=1), count=4, progress=False)
    assert capsys.readouterr().err == ""


# -------------------------------------------------------------------------------------- schedulers
def test_scheduler_steps_honoured_and_config(unet):
    from diffusers import DDIMScheduler, DDPMScheduler
    counter = CountingUNet(unet)
    generate(counter, SamplingConfig(sampler="ddim", num_inference_steps=7, batch_size=4), count=3,
             progress=False)
    assert counter.calls == 7
    sched_cfg = dict(num_train_timesteps=20, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                     clip_sample=False, variance_type="fixed_large", prediction_type="epsilon")
    counter.calls = 0
    c = SamplingConfig(sampler="ddpm", batch_size=4)
    assert c.num_inference_steps is None and c.resolved(sched_cfg).num_inference_steps == 20
    generate(counter, c, count=2, scheduler_config=sched_cfg, progress=False)
    assert counter.calls == 20  # DDPM default: every training timestep of the given config

    s = make_scheduler("ddim", sched_cfg, 10)
    assert isinstance(s, DDIMScheduler) and len(s.timesteps) == 10
    assert s.config.clip_sample is False and s.config.num_train_timesteps == 20
    d = make_scheduler("ddim")  # DDPM CIFAR-10 defaults; DDIM keeps clip_sample=True
    assert d.config.clip_sample is True and d.config.num_train_timesteps == 1000
    assert len(d.timesteps) == 100 and int(d.timesteps[0]) == 990 and int(d.timesteps[-1]) == 0
    p = make_scheduler("ddpm", DDPMScheduler(num_train_timesteps=50, variance_type="fixed_large"))
    assert isinstance(p, DDPMScheduler) and len(p.timesteps) == 50 and p.config.variance_type == "fixed_large"
    with pytest.raises(SamplingError):
        make_scheduler("euler")
    with pytest.raises(SamplingError):
        make_scheduler("ddim", sched_cfg, 21)


def test_scheduler_config_from_path(tmp_path):
    (tmp_path / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "DDPMScheduler", "num_train_timesteps": 30, "beta_end": 0.01}))
    s = make_scheduler("ddim", tmp_path, 3)
    assert s.config.num_train_timesteps == 30 and s.config.beta_end == 0.01


def test_sampling_config_validation_and_dict():
    c = SamplingConfig()
    assert c.to_dict() == dict(sampler="ddim", num_inference_steps=100, eta=0.0, seed=0, batch_size=256,
                               dtype="float32", device=None, backend="standard", compile=False, fused_resnet=False,
                               onepass_group_norm=False, compile_options=None)
    # the standard backend's protocol is what it was before backends existed (old stores stay valid)
    assert "backend" not in c.protocol_dict() and "compile" not in c.protocol_dict()
    assert SamplingConfig(backend="fast").protocol_dict()["backend"] == "fast"
    # fused kernels change float16 rounding: their samples get their own store; without them the key is as before
    assert "fused_resnet" not in SamplingConfig(backend="fast").protocol_dict()
    assert SamplingConfig(backend="fast", fused_resnet=True).protocol_dict()["fused_resnet"] is True
    assert "onepass_group_norm" not in SamplingConfig(backend="fast").protocol_dict()
    assert SamplingConfig(backend="fast", onepass_group_norm=True).protocol_dict()["onepass_group_norm"] is True
    assert "compile_options" not in SamplingConfig(backend="fast", compile=True, compile_options={}).protocol_dict()
    assert SamplingConfig(backend="fast", compile=True, compile_options={"b": 1, "a": True}).protocol_dict()[
        "compile_options"] == {"a": True, "b": 1}
    assert SamplingConfig(sampler="DDPM").resolved().num_inference_steps == 1000
    assert SamplingConfig(dtype="bf16").dtype == "bfloat16"
    for bad in (dict(sampler="euler"), dict(dtype="int8"), dict(eta=-1), dict(seed=-1), dict(batch_size=0),
                dict(num_inference_steps=0), dict(backend="turbo"), dict(backend="fast", sampler="ddpm"),
                dict(backend="fast", eta=1.0), dict(compile=True), dict(fused_resnet=True),
                dict(onepass_group_norm=True), dict(backend="fast", onepass_group_norm=True, fused_resnet=True),
                dict(backend="fast", compile_options={"max_autotune_pointwise": True}),
                dict(backend="fast", compile=True, compile_options=["max_autotune_pointwise"])):
        with pytest.raises(SamplingError):
            SamplingConfig(**bad)
    with pytest.raises(SamplingError, match="--sampling-backend standard"):
        SamplingConfig(backend="fast", sampler="ddpm")


def test_fast_backend_fills_the_store_with_the_standard_samples(unet, tmp_path):
    """backend='fast' in float32 on the CPU: the same images as the standard path, chunk by chunk, in a store
    whose protocol names the backend (a standard store is never mixed with a fast one)."""
    std = generate(unet, cfg(3), count=7, progress=False)
    c = cfg(3, backend="fast")
    store = generate_to_store(unet, c, tmp_path / "fast", 7, chunk_size=4, progress=False)
    np.testing.assert_array_equal(store.load(7), std)
    assert store.metadata["sampling"]["backend"] == "fast"
    with pytest.raises(SampleStoreMismatchError):
        generate_to_store(unet, cfg(3), SampleStore(tmp_path / "fast"), 7, progress=False)


@half_precision_on_cpu_ok
def test_fast_sampler_is_prepared_once_and_reused_for_other_seeds(unet):
    """Another seed reuses the prepared (cast/compiled) model; changed weights get a fresh sampler."""
    import copy

    from maskpro_eval.sampling.fill_store import fast_sampler
    a = fast_sampler(unet, cfg(3, seed=1, backend="fast", dtype="float16"))
    b = fast_sampler(unet, cfg(3, seed=2, backend="fast", dtype="float16"))
    assert b.model is a.model and b._fwd is a._fwd and (a.sampling.seed, b.sampling.seed) == (1, 2)
    # a reseeded sampler gives exactly what a freshly prepared one with that seed gives
    from maskpro_eval.sampling.fast import FastDDIMSampler
    fresh = FastDDIMSampler(unet, steps=STEPS, seed=2, batch_size=3, dtype="float16", device="cpu")
    np.testing.assert_array_equal(b.images(4), fresh.images(4))
    changed = copy.deepcopy(unet)
    with torch.no_grad():
        changed.conv_out.bias.add_(0.1)
    c = fast_sampler(changed, cfg(3, seed=2, backend="fast", dtype="float16"))
    assert c.model is not a.model


def test_half_precision_on_a_cpu_warns_with_the_fix(unet):
    """float16/bfloat16 on a CPU runs (tests above), but on either backend the user is told it is a GPU setting and
    what to type; float32 does not warn."""
    import warnings

    from maskpro_eval.sampling.config import CPUHalfPrecisionWarning
    from maskpro_eval.sampling.fast import FastDDIMSampler
    for dtype in ("float16", "bfloat16"):
        advice = rf"^{dtype} sampling on a CPU: .*Fix: --dtype float32 on a CPU"
        with pytest.warns(CPUHalfPrecisionWarning, match=advice):
            FastDDIMSampler(unet, steps=2, batch_size=2, dtype=dtype, device="cpu")
        with pytest.warns(CPUHalfPrecisionWarning, match=advice):   # the standard backend's autocast
            generate(unet, cfg(2, dtype=dtype, num_inference_steps=1), count=2, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CPUHalfPrecisionWarning)
        FastDDIMSampler(unet, steps=2, batch_size=2, dtype="float32", device="cpu")
        generate(unet, cfg(2, num_inference_steps=1), count=2, progress=False)


# -------------------------------------------------------------------------------------- store
def _meta(c, unet=None):
    return protocol_metadata(c, model_id=None if unet is None else {"name": "tiny",
                                                                     "sha256": model_fingerprint(unet)})


def test_resume_after_interruption(unet, tmp_path):
    c = cfg(3, kind="ddpm")
    ref = generate(unet, c, count=10, progress=False)
    n_batches_chunk = 2  # chunk_size 4 at batch 3 -> batches of 3 + 1

    flaky = CountingUNet(unet, fail_after=STEPS * n_batches_chunk + 2)  # dies inside chunk 2
    store = SampleStore(tmp_path / "s", chunk_size=4, metadata=_meta(c, unet))
    with pytest.raises(RuntimeError, match="simulated"):
        generate_to_store(flaky, c, store, 10, progress=False)
    names = sorted(os.listdir(tmp_path / "s"))
    assert names == ["samples_0000000_0000004.npz", "store.json"]  # whole chunk or nothing, no tmp
    assert store.missing_chunks(10) == [(4, 8), (8, 10)]
    assert not store.is_complete(10)
    with pytest.raises(SampleStoreIncompleteError, match="6 of 10"):
        store.load(10)

    counter = CountingUNet(unet)
    store2 = SampleStore(tmp_path / "s", metadata=_meta(c, unet))  # reopen: chunk size from disk
    assert store2.chunk_size == 4
    generate_to_store(counter, c, store2, 10, progress=False)
    assert counter.calls == STEPS * (2 + 1)  # chunk [4,8): 2 batches, [8,10): 1 batch; [0,4) not redone
    np.testing.assert_array_equal(store2.load(10), ref)
    np.testing.assert_array_equal(store2.load(5), ref[:5])
    assert store2.is_complete(10)

    counter.calls = 0  # complete: nothing to do
    generate_to_store(counter, c, tmp_path / "s", 10, model_id=_meta(c, unet)["model"], progress=False)
    assert counter.calls == 0


def test_sharded_processes_fill_one_store(unet, tmp_path):
    c = cfg(4, kind="ddim_eta1")
    counters = [CountingUNet(unet), CountingUNet(unet)]
    for rank in (1, 0):  # two "processes", each its own chunks
        store = generate_to_store(counters[rank], c, tmp_path / "s", 10, chunk_size=4, rank=rank,
                                  world_size=2, progress=False)
    assert counters[0].calls == STEPS * 2 and counters[1].calls == STEPS  # chunks 0, 2 vs chunk 1
    np.testing.assert_array_equal(store.load(10), generate(unet, c, count=10, progress=False))
    with pytest.raises(SamplingError):
        generate_to_store(unet, c, tmp_path / "s", 10, rank=2, world_size=2, progress=False)


def test_metadata_equal_for_scheduler_object_dict_and_default():
    from maskpro_eval.checkpoints.architecture import DDPM_CIFAR10_SCHEDULER_CONFIG, default_scheduler
    c = SamplingConfig()
    a = protocol_metadata(c)
    assert a == protocol_metadata(c, default_scheduler())
    assert a == protocol_metadata(c, dict(DDPM_CIFAR10_SCHEDULER_CONFIG))
    assert a["sampling"]["num_inference_steps"] == 100 and a["scheduler_config"]["clip_sample"] is True
    assert protocol_metadata(SamplingConfig(sampler="ddpm"))["sampling"]["num_inference_steps"] == 1000


def test_grow_store_regenerates_short_last_chunk(unet, tmp_path):
    c = cfg(4)
    generate_to_store(unet, c, tmp_path / "s", 6, chunk_size=4, progress=False)
    assert (tmp_path / "s" / "samples_0000004_0000006.npz").exists()
    generate_to_store(unet, c, tmp_path / "s", 8, progress=False)
    assert not (tmp_path / "s" / "samples_0000004_0000006.npz").exists()
    np.testing.assert_array_equal(SampleStore(tmp_path / "s", metadata=_meta(c)).load(8),
                                  generate(unet, c, count=8, progress=False))


def test_metadata_mismatch(unet, tmp_path):
    c = cfg(4)
    generate_to_store(unet, c, tmp_path / "s", 4, chunk_size=4, progress=False)
    with pytest.raises(SampleStoreMismatchError, match=r"sampling\.seed: on disk 0 vs requested 1"):
        SampleStore(tmp_path / "s", metadata=_meta(cfg(4, seed=1)))
    with pytest.raises(SampleStoreMismatchError, match="eta"):
        generate_to_store(unet, cfg(4, kind="ddim_eta1"), tmp_path / "s", 4, progress=False)
    with pytest.raises(SampleStoreMismatchError, match="chunk_size"):
        SampleStore(tmp_path / "s", chunk_size=2, metadata=_meta(c))
    with pytest.raises(SampleStoreMismatchError, match="model"):
        SampleStore(tmp_path / "s", metadata=_meta(c, unet))
    # a store object of another protocol handed to generate_to_store
    other = SampleStore(tmp_path / "o", metadata=_meta(cfg(4, seed=3)))
    with pytest.raises(SampleStoreMismatchError):
        generate_to_store(unet, c, other, 4, progress=False)
    # overwrite=True replaces the old samples
    s = SampleStore(tmp_path / "s", metadata=_meta(cfg(4, seed=1)), overwrite=True)
    assert s.missing_chunks(4) == [(0, 4)]
    assert os.listdir(tmp_path / "s") == ["store.json"]


def test_corrupt_chunk_detected_and_regenerated(unet, tmp_path):
    c = cfg(4, kind="ddim_eta1")
    store = generate_to_store(unet, c, tmp_path / "s", 8, chunk_size=4, progress=False)
    ref = store.load(8)
    p = tmp_path / "s" / "samples_0000004_0000008.npz"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.warns(CorruptChunkWarning, match="samples_0000004_0000008"):
        assert store.missing_chunks(8) == [(4, 8)]
    assert store.corrupt_chunks == [p.name]
    with pytest.warns(CorruptChunkWarning), pytest.raises(SampleStoreIncompleteError, match="corrupt"):
        store.load(8)
    counter = CountingUNet(unet)
    with pytest.warns(CorruptChunkWarning):
        generate_to_store(counter, c, store, 8, progress=False)
    assert counter.calls == STEPS  # one batch: only the corrupt chunk
    np.testing.assert_array_equal(store.load(8), ref)

    # flipped bytes inside the image data (CRC error) are detected too
    data = bytearray(p.read_bytes())
    mid = data.find(b"images.npy") + 400
    data[mid:mid + 8] = bytes(255 - b for b in data[mid:mid + 8])
    p.write_bytes(bytes(data))
    os.utime(p, ns=(1, 1))
    with pytest.warns(CorruptChunkWarning):
        assert store.missing_chunks(8) == [(4, 8)]


def test_write_is_atomic(tmp_path, monkeypatch):
    store = SampleStore(tmp_path / "s", chunk_size=2, metadata={"x": 1})

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        store.write_chunk(0, np.zeros((2, 4, 4, 3), np.uint8))
    monkeypatch.undo()
    assert os.listdir(tmp_path / "s") == ["store.json"]
    store.write_chunk(0, np.full((2, 4, 4, 3), 9, np.uint8))
    with np.load(tmp_path / "s" / "samples_0000000_0000002.npz") as z:
        assert z["indices"].tolist() == [0, 1] and json.loads(str(z["metadata"])) == {"x": 1}
    with pytest.raises(Exception):
        store.write_chunk(1, np.zeros((2, 4, 4, 3), np.uint8))  # not on the chunk grid


def test_corrupt_store_header_names_a_fix_the_command_line_has(tmp_path):
    from maskpro_eval.sampling.store import SampleStore, SampleStoreError
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "store.json").write_text("{not json")
    with pytest.raises(SampleStoreError) as ei:
        SampleStore(tmp_path / "s", metadata={"a": 1})
    msg = str(ei.value)
    assert f"delete {tmp_path / 's'}" in msg and "--samples-dir" in msg


def test_fast_backend_runs_full_batches_across_chunks(unet, tmp_path, monkeypatch):
    """backend='fast': the missing chunks are made as one stream of full batches (only the run's last batch is
    partial, so a GPU pads once, not once per chunk), each chunk is written whole, and the images are the
    standard path's; a resumed store makes only its missing chunks, again in full batches."""
    from collections import OrderedDict

    from maskpro_eval.sampling import fill_store
    monkeypatch.setattr(fill_store, "_FAST_SAMPLERS", OrderedDict())   # a sampler around this counter
    c = cfg(3, backend="fast")
    ref = generate(unet, cfg(3), count=10, progress=False)
    counter, stats = CountingUNet(unet), {}
    store = generate_to_store(counter, c, tmp_path / "f", 10, chunk_size=4, progress=False, stats=stats)
    assert counter.calls == STEPS * 4            # ceil(10 / 3) batches; chunk by chunk: 2 + 2 + 1 = 5
    np.testing.assert_array_equal(store.load(10), ref)
    assert [n for n, _ in stats["chunks"]] == [4, 4, 2] and stats["generated"] == 10
    assert stats["warmup_seconds"] == 0.0          # warmed up apart only on CUDA or when compiling

    (tmp_path / "f" / "samples_0000004_0000008.npz").unlink()
    (tmp_path / "f" / "samples_0000008_0000010.npz").unlink()
    monkeypatch.setattr(fill_store, "_FAST_SAMPLERS", OrderedDict())
    counter = CountingUNet(unet)
    store = generate_to_store(counter, c, tmp_path / "f", 10, progress=False)
    assert counter.calls == STEPS * 2            # samples 4..9: batches of 3 + 3
    np.testing.assert_array_equal(store.load(10), ref)


def test_fast_iter_images_yields_each_group_whole_and_in_order(unet):
    """FastDDIMSampler.iter_images: every group (empty ones too, any indices) comes back complete, in order,
    equal to images() of that group, from batches that span the groups."""
    from maskpro_eval.sampling.fast import FastDDIMSampler
    fast = FastDDIMSampler(unet, steps=STEPS, seed=2, batch_size=3, dtype="float32", device="cpu")
    groups = [[], [0, 1, 2, 3, 4], [], [9], [7, 5, 8], []]
    got = list(fast.iter_images(groups))
    assert [k for k, _ in got] == list(range(len(groups)))
    for (k, arr), g in zip(got, groups):
        assert arr.shape == (len(g), 16, 16, 3) and arr.dtype == np.uint8
        if g:
            np.testing.assert_array_equal(arr, fast.images(indices=g))
    assert fast.stats["images"] == 9 + 9           # 9 in iter_images, then the same 9 again in images()


def test_measured_warmup_is_booked_as_compile_warmup_not_estimated():
    """QualityEvaluator._record_sampling: a warm-up measured apart (fast sampler on CUDA) is the compile_warmup
    phase and the chunks are all sampling; without it the first chunk's excess is the estimate."""
    from types import SimpleNamespace

    from maskpro_eval.metrics.quality import FullSettings, QualityEvaluator
    model = SimpleNamespace(name="m", unet=torch.nn.Linear(2, 2))
    q = QualityEvaluator(FullSettings(num_samples=8))
    q._record_sampling(model, {"steps": 10, "chunks": [(4, 3.0), (4, 1.0)], "warmup_seconds": 5.0})
    ph = q.timer.summary()["phases"]
    assert ph["compile_warmup"]["seconds"] == pytest.approx(5.0) and ph["sampling"]["seconds"] == pytest.approx(4.0)
    q = QualityEvaluator(FullSettings(num_samples=8))
    q._record_sampling(model, {"steps": 10, "chunks": [(4, 3.0), (4, 1.0)]})
    ph = q.timer.summary()["phases"]
    assert ph["compile_warmup"]["seconds"] == pytest.approx(2.0) and ph["sampling"]["seconds"] == pytest.approx(2.0)
    q = QualityEvaluator(FullSettings(num_samples=8))
    q._record_sampling(model, {"steps": 10, "chunks": [(4, 3.0), (4, 1.0)], "warmup_seconds": 0.0})
    ph = q.timer.summary()["phases"]
    assert "compile_warmup" not in ph and ph["sampling"]["seconds"] == pytest.approx(4.0)   # measured: none


@half_precision_on_cpu_ok
def test_fast_backend_never_stores_a_chunk_of_a_non_finite_batch(unet, tmp_path):
    """A chunk that a non-finite (float16 overflow) batch completes is not written before the error: the run
    stops with the fix named and the store holds no chunk of it, so a resumed run cannot read black images."""
    import copy
    hot = copy.deepcopy(unet)
    with torch.no_grad():
        hot.conv_out.weight.mul_(1e6)
    c = cfg(3, backend="fast", dtype="float16")
    from maskpro_eval.sampling.fast import FastSamplingError
    with pytest.raises(FastSamplingError, match=r"non-finite.*samples 0\.\.2"):
        generate_to_store(hot, c, tmp_path / "s", 6, chunk_size=2, progress=False)   # chunk [0,2) ends in batch 0
    assert not list((tmp_path / "s").glob("samples_*.npz"))
