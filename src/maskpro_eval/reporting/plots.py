"""Figures written atomically (matplotlib, Agg backend) through the one atomic writer."""
from __future__ import annotations

import io
from pathlib import Path

from maskpro_eval.reporting.atomic_io import atomic_write


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """Render ``fig`` to PNG at ``path`` (atomically: readers never see a half-written file); close it."""
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buf.getvalue()), fsync=False, perms=0o666)
