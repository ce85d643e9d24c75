"""BatchNorm folded into the conv before it, for inference (MAP 5.1, BatchNorm; MAP 5.3,
compression and deployment).

In eval mode BatchNorm is a fixed per-channel affine map, ``y = γ (z - μ) / σ + β`` with
``σ = sqrt(var + ε)`` from the running statistics, and a conv's output ``z = W * x + b`` is
linear in its weights, so the two are one conv:

    W' = W · γ / σ          (per output channel)
    b' = (b - μ) · γ / σ + β

The folded net computes the same function (to float rounding) with one op where there were
two; for a small net at batch 1 on a CPU, where each op's fixed cost dominates, that is most of
its speed. ONNX Runtime makes the same rewrite when it loads a graph, and Ultralytics' YOLO
calls it ``model.fuse()`` before timing; the arithmetic is torch's own
(:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`). What this module adds is finding the pairs
in deepatlas's layers: a ``Conv2d`` followed by a ``BatchNorm2d`` in an ``nn.Sequential``
(``conv_bn`` blocks), and the two pairs inside a
:class:`~deepatlas.nn.conv.DepthwiseSeparableConv2d`.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from deepatlas.nn.conv import DepthwiseSeparableConv2d


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` in which every BatchNorm that directly follows a conv is
    folded into it and replaced by ``nn.Identity``; ``model`` itself is left unchanged. Other
    BatchNorm layers (after an addition, say) stay as they are: count them with
    :func:`batchnorm_layers` when every one should have gone."""
    folded = copy.deepcopy(model).eval()  # the running statistics are what gets folded
    for module in folded.modules():
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                conv, norm = module[i], module[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                    module[i], module[i + 1] = fuse_conv_bn_eval(conv, norm), nn.Identity()
        elif isinstance(module, DepthwiseSeparableConv2d) and module.norm_act:
            module.depthwise = fuse_conv_bn_eval(module.depthwise, module.bn1)
            module.pointwise = fuse_conv_bn_eval(module.pointwise, module.bn2)
            module.bn1, module.bn2 = nn.Identity(), nn.Identity()
    return folded


def batchnorm_layers(model: nn.Module) -> int:
    """How many BatchNorm layers ``model`` still has."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
