"""Progressive resizing (fast.ai's DAWNBench entry, FFCV's ImageNet recipes), MAP 8.

Early epochs train on small crops, which cost (size / full)^2 of the compute, and the last
epochs on larger ones; the test keeps its own size (``data.image_size``), a little above the
final training size, which also undoes the train/test resolution gap (Touvron et al. 2019).
FFCV's ResNet-50 schedule: 160 px until epoch 65 of 88, a linear ramp to 192 px by epoch 76,
test at 224 (resized to 256). The ramp here sits at the same fractions of the run.
"""

from __future__ import annotations

RAMP = (65 / 88, 76 / 88)  # the ramp's start and end, as fractions of the epochs (FFCV)


def progressive_size(epoch: int, epochs: int, start: int, end: int, multiple: int = 32) -> int:
    """The training crop for ``epoch`` (0-based) of ``epochs``: ``start`` up to the ramp,
    ``end`` after it, linear in between, rounded to a multiple of ``multiple`` px."""
    first = int(RAMP[0] * epochs)
    last = max(first + 1, int(RAMP[1] * epochs))
    fraction = min(1.0, max(0.0, (epoch - first) / (last - first)))
    size = start + fraction * (end - start)
    return max(multiple, int(round(size / multiple)) * multiple)
