"""The fixes loaders suggest (one wording for the pytest option and the API argument)."""
from __future__ import annotations

TRUST_FIX = ("if you trust the file, allow executing its pickle: add --trust-pickle (pytest option) "
             "or pass trust_pickle=True (API)")
BASE_FIX = ("pass the model the masks/weights belong to: --base-model PATH (pytest option) or base_model=PATH (API) "
            "(a diffusers pipeline/unet folder, a pickled module with trust, or a loaded checkpoint)")
