"""Gallery of generated (VH, soft water label) pairs next to real training crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from floodnb.generate.sample import Generated


def gallery_figure(generated: Generated, real_db: np.ndarray, real_label: np.ndarray, *, n: int = 6,
                   path: str | Path | None = None):
    """Figure with 4 rows of ``n`` chips: real VH (dB), real hand label, generated VH (dB), generated
    ``p_water``. Saved atomically to ``path`` when given; returns the figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from floodnb.io_utils import atomic_path

    n = max(1, min(n, len(generated), len(real_db)))
    gen_db = generated.s1_db()
    fig, axes = plt.subplots(4, n, figsize=(2.0 * n, 8.4), squeeze=False)
    rows = [("real VH (dB)", real_db[:n, 1], dict(cmap="gray", vmin=-30, vmax=-5)),
            ("real hand label", np.where(real_label[:n] < 0, np.nan, real_label[:n]), dict(cmap="Blues", vmin=0,
                                                                                           vmax=1)),
            ("generated VH (dB)", gen_db[:n, 1], dict(cmap="gray", vmin=-30, vmax=-5)),
            ("generated p(water)", generated.soft[:n, 1], dict(cmap="Blues", vmin=0, vmax=1))]
    for r, (title, images, kw) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(images[c], interpolation="nearest", **kw)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(title, fontsize=9)
    fig.suptitle("DAKTer generator: real training crops (top) and generated pairs (bottom)")
    fig.tight_layout()
    if path is not None:
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, dpi=80, format="png")
        plt.close(fig)
    return fig
