"""The compute dtypes the suite accepts, by name (one table for sampling, benchmarks and the CLIs)."""
from __future__ import annotations

import torch

#: canonical name -> torch dtype.
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: other spellings users type -> canonical name.
ALIASES: dict[str, str] = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16",
                           "half": "float16", "torch.float32": "float32", "torch.bfloat16": "bfloat16",
                           "torch.float16": "float16"}


def dtype_name(dtype) -> str:
    """Canonical name of ``dtype`` (a name, an alias or a torch dtype); ValueError for anything else."""
    text = str(dtype)
    text = ALIASES.get(text, text)
    if text not in DTYPES:
        raise ValueError(f"dtype must be one of {tuple(DTYPES)} (or {', '.join(ALIASES)}), got {dtype!r}")
    return text


def torch_dtype(dtype) -> torch.dtype:
    """The torch dtype of a name, alias or torch dtype."""
    return DTYPES[dtype_name(dtype)]
