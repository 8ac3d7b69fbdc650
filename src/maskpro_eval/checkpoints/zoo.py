"""The bundled demo model zoo: small trained DDPM UNets on 32px digits (see ``demo_zoo/ZOO.md``).

Built by ``scripts/build_demo_zoo.py``. Models are diffusers ``DDPMPipeline`` folders; a model spec
``"demo:NAME"`` anywhere a checkpoint path is accepted resolves to the bundled folder.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

#: Directory holding the bundled models and the reference data.
ZOO_ROOT: Path = Path(__file__).resolve().parents[1] / "demo_zoo"

#: Bundled model names (each a diffusers pipeline folder under :data:`ZOO_ROOT`).
ZOO_MODELS: tuple[str, ...] = ("dense", "magnitude_2of4", "maskpro_2of4", "magnitude_2of4_ft", "maskpro_2of4_ft",
                               "noncompliant")

#: Models the quick and full tiers evaluate when the user names none (the deployable, fine-tuned ones),
#: and the baseline they are compared to.
DEFAULT_MODELS_UNDER_TEST: tuple[str, ...] = ("magnitude_2of4_ft", "maskpro_2of4_ft")
DEFAULT_BASELINE: str = "dense"

#: Models a compare run evaluates when the user names none: the whole study (one-shot and fine-tuned).
STUDY_MODELS: tuple[str, ...] = ("magnitude_2of4", "maskpro_2of4", "magnitude_2of4_ft", "maskpro_2of4_ft")

#: FID reference images: the held-out test digits no zoo model trained on (uint8 (397, 32, 32, 3), key ``images``).
ZOO_REFERENCE_FILE: Path = ZOO_ROOT / "digits_heldout_32px.npz"

#: Their float32 Inception features under the standard protocol (keys ``features``, ``meta``), written by
#: ``python scripts/bundle_reference_features.py``: a read-only entry of the FID statistics cache, used only
#: when its content, weights and protocol hashes match (metrics.reference.BUNDLED_FEATURE_FILES).
ZOO_REFERENCE_FEATURES_FILE: Path = ZOO_ROOT / "digits_heldout_32px_features.npz"

#: The demo MaskPro training run (trainer format), the workflow tier's default ``--training-dir``.
ZOO_TRAINING_DIR: Path = ZOO_ROOT / "maskpro_run" / "maskpro" / "training" / "checkpoints"

DEMO_PREFIX = "demo:"


def zoo_model_path(name: str) -> Path:
    """Folder of the bundled model ``name``; ValueError listing the names if it is unknown."""
    if name not in ZOO_MODELS:
        raise ValueError(f"unknown demo model {name!r}; the demo zoo has: {', '.join(ZOO_MODELS)} "
                         f"(use e.g. 'demo:{ZOO_MODELS[0]}')")
    path = ZOO_ROOT / name
    if not path.is_dir():
        raise FileNotFoundError(f"demo model {name!r} is not installed at {path}; rebuild it with "
                                "'python scripts/build_demo_zoo.py'")
    return path


def resolve_model_spec(spec: str | Path) -> Path:
    """``"demo:NAME"`` -> the bundled model folder; anything else -> ``Path(spec)`` unchanged."""
    if isinstance(spec, str) and spec.startswith(DEMO_PREFIX):
        return zoo_model_path(spec[len(DEMO_PREFIX):])
    return Path(spec)


def zoo_reference_images() -> np.ndarray:
    """The held-out digits (the demo FID reference) as uint8 ``(N, 32, 32, 3)`` (no scikit-learn needed)."""
    if not ZOO_REFERENCE_FILE.is_file():
        raise FileNotFoundError(f"demo reference data missing at {ZOO_REFERENCE_FILE}; rebuild it with "
                                "'python scripts/build_demo_zoo.py'")
    with np.load(ZOO_REFERENCE_FILE) as data:
        return data["images"]
