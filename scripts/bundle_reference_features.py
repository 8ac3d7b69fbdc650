"""Write the demo zoo's bundled reference features (checkpoints.zoo.ZOO_REFERENCE_FEATURES_FILE): the
standard-protocol Inception features of the 397 held-out digits, so that a default demo run (and CI) does
not spend ~60 s of CPU Inception on them. The file is an entry of the FID statistics cache, read only when
its content, weights and protocol hashes match (metrics.reference.BUNDLED_FEATURE_FILES); tests/test_reference.py
recomputes a subset of its rows and checks its statistics.

    python scripts/bundle_reference_features.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from maskpro_eval.checkpoints.zoo import ZOO_REFERENCE_FEATURES_FILE, ZOO_REFERENCE_FILE, ZOO_ROOT
from maskpro_eval.metrics.inception import get_extractor
from maskpro_eval.metrics.reference import bundled_features_meta, load_reference
from maskpro_eval.reporting.atomic_io import atomic_write


def main() -> int:
    ext = get_extractor()  # the standard weights and protocol
    if not ext.weights_are_standard:
        print(f"refused: {ext.weights_note}", file=sys.stderr)
        return 2
    stats = load_reference(ZOO_REFERENCE_FILE, ext, use_cache=False, batch_size=8, progress=True)
    stats.source = ZOO_REFERENCE_FILE.name   # not this machine's path
    meta = bundled_features_meta(stats, "python scripts/bundle_reference_features.py")
    arrays = {"features": stats.features.astype(np.float32), "meta": np.asarray(json.dumps(meta))}
    atomic_write(ZOO_REFERENCE_FEATURES_FILE, lambda f: np.savez_compressed(f, **arrays))
    ZOO_REFERENCE_FEATURES_FILE.chmod(0o644)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from build_demo_zoo import write_manifest   # MANIFEST.json lists every file of the zoo with its hash
    write_manifest(ZOO_ROOT)
    print(f"wrote {ZOO_REFERENCE_FEATURES_FILE} ({stats.n} x {stats.features.shape[1]}) and {ZOO_ROOT / 'MANIFEST.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
