"""BatchNorm folded into the conv before it, for inference (MAP 5.1, BatchNorm; MAP 5.3,
compression and deployment).

In eval mode BatchNorm is a fixed per-channel affine map, ``y = γ (z - μ) / σ + β`` with
``σ = sqrt(var + ε)`` from the running statistics, and a conv's output ``z = W * x + b`` is
linear in its weights, so the two are one conv:

    W' = W · γ / σ          (per output channel)
    b' = (b - μ) · γ / σ + β

The folded net computes the same function (to float rounding) with one op fewer per pair; at
batch 1 on a CPU each op has a fixed cost besides its arithmetic. What that buys the small
detector is measured beside the unfolded model by the lab's ``detection`` experiment: on this
project's 2-core machine, from 63 to 73 frames per second at 320 px in one run
(``git show 9930aaa:results/tour-summary.json``), and nothing decided (+0.4 [-27, +28], paired
over 5 trials) in a faster one (``results/tour-summary.json``).
ONNX Runtime makes the same rewrite when it loads a graph, and Ultralytics' YOLO calls it
``model.fuse()`` before timing; the arithmetic is torch's own
(:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`). What this module adds is finding the pairs
in deepatlas's layers: a ``Conv2d`` followed by a ``BatchNorm2d`` in a plain ``nn.Sequential``
(``conv_bn`` blocks), and the two pairs inside a
:class:`~deepatlas.nn.conv.DepthwiseSeparableConv2d`. Only those exact classes are folded: a
subclass may run its children in another order, or its conv may not be a plain conv.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from deepatlas.nn.conv import DepthwiseSeparableConv2d


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` in which every ``BatchNorm2d`` that follows a ``Conv2d``
    in a plain ``nn.Sequential``, and the two inside each ``DepthwiseSeparableConv2d``, are
    folded into their conv and replaced by ``nn.Identity``; ``model`` itself is left unchanged.
    Other BatchNorm layers (after an addition, in a block of another class, or without running
    statistics) stay as they are: count them with :func:`batchnorm_layers` when every one
    should have gone."""
    folded = copy.deepcopy(model).eval()  # the running statistics are what gets folded
    for module in folded.modules():
        if type(module) is nn.Sequential:
            for i in range(len(module) - 1):
                if _foldable(module[i], module[i + 1]):
                    module[i], module[i + 1] = fuse_conv_bn_eval(module[i], module[i + 1]), \
                        nn.Identity()
        elif type(module) is DepthwiseSeparableConv2d and module.norm_act and all(
                _foldable(conv, norm) for conv, norm in ((module.depthwise, module.bn1),
                                                          (module.pointwise, module.bn2))):
            module.depthwise = fuse_conv_bn_eval(module.depthwise, module.bn1)
            module.pointwise = fuse_conv_bn_eval(module.pointwise, module.bn2)
            module.bn1, module.bn2 = nn.Identity(), nn.Identity()
    return folded


def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and type(norm) is nn.BatchNorm2d
            and norm.running_mean is not None)


def batchnorm_layers(model: nn.Module) -> int:
    """How many BatchNorm layers ``model`` still has."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
