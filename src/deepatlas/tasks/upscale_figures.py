"""The page's super-resolution crops: the same detailed window of each test photograph as the
low-resolution input, bicubic, each model, and the original."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from deepatlas.data.superres import SRImages, bicubic_upscale


def detailed_window(hr: torch.Tensor, side: int, scale: int) -> tuple[int, int]:
    """Top-left corner (multiple of ``scale``) of the ``side`` px window of ``hr`` (3, H, W)
    with the most gradient energy: where enlargement is hard, not a patch of sky."""
    grey = hr.float().mean(0)
    energy = torch.zeros_like(grey)  # (H, W): squared forward differences, 0 on the far edges
    energy[:-1, :-1] = grey.diff(dim=0)[:, :-1].square() + grey.diff(dim=1)[:-1].square()
    windows = torch.nn.functional.avg_pool2d(energy[None, None], side, stride=scale)[0, 0]
    y, x = divmod(int(windows.argmax()), windows.shape[1])
    return y * scale, x * scale


def save_crops(path: Path, images: SRImages, enlargers: dict[str, Callable[[torch.Tensor],
               torch.Tensor]], scale: int, count: int = 3, side: int = 96) -> None:
    """Rows: up to ``count`` photographs; columns: LR (nearest), bicubic, each enlarger
    ((3, h, w) uint8 -> (3, sh, sw) uint8), HR. PSNR-free: the numbers are in the summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = min(count, len(images))
    side = min(side, *(min(hr.shape[1:]) for hr in images.hr[:rows])) // scale * scale
    columns = [f"input (x{scale} nearest)", "bicubic", *enlargers, "original"]
    fig, axes = plt.subplots(rows, len(columns), figsize=(2.2 * len(columns), 2.3 * rows),
                             squeeze=False)
    for r in range(rows):
        lr, hr = images.lr[r], images.hr[r]
        y, x = detailed_window(hr, side, scale)
        window = (slice(None), slice(y, y + side), slice(x, x + side))
        lr_window = lr[:, y // scale:(y + side) // scale, x // scale:(x + side) // scale]
        panels = [lr_window.repeat_interleave(scale, 1).repeat_interleave(scale, 2),
                  torch.from_numpy(bicubic_upscale(lr.permute(1, 2, 0).numpy(), scale)
                                   ).permute(2, 0, 1)[window],
                  *(enlarge(lr)[window] for enlarge in enlargers.values()), hr[window]]
        for c, (ax, panel) in enumerate(zip(axes[r], panels)):
            ax.imshow(np.asarray(panel.permute(1, 2, 0)), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
        axes[r][0].set_ylabel(images.names[r], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
