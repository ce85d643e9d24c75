"""Convolutions of the map (MAP 4.1): dilated, depthwise separable, deformable, and the
receptive field that dilation widens.

A k x k conv with dilation d spreads its taps d pixels apart: it covers ``d (k - 1) + 1``
pixels with the same k^2 weights. Stacked, the receptive field grows as
``r_l = r_{l-1} + (k_eff_l - 1) * J_{l-1}``, ``J_l = J_{l-1} * s_l`` (J: the product of the
strides so far), so 3x3 convs with dilation 1, 2, 4 see 1 + 2 + 4 + 8 = 15 pixels.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def receptive_field(model_or_layers: nn.Module | Iterable[nn.Module],
                    input_size: int | None = None) -> int:
    """Theoretical receptive field (pixels, along height) of the conv/pool stack, in order.

    Layers other than convolutions and pooling do not change it. With ``input_size`` the result
    is capped at the input: the part of such an image one output pixel can see.
    """
    layers = model_or_layers.modules() if isinstance(model_or_layers, nn.Module) else (
        m for layer in model_or_layers for m in layer.modules())
    field, jump = 1, 1
    for m in layers:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k = _pair(m.kernel_size)[0]
            s = _pair(m.stride)[0]
            d = _pair(getattr(m, "dilation", 1))[0]
            field += (d * (k - 1)) * jump  # k_eff - 1 = d (k - 1)
            jump *= s
    return min(field, input_size) if input_size else field


def empirical_receptive_field(model: nn.Module, input_size: int, in_channels: int = 1
                              ) -> tuple[int, int]:
    """Measured receptive field (height, width): the extent of the input pixels whose
    gradient is non-zero for the centre output pixel. Weights are set to positive values
    first, so no tap cancels another by chance. Max-pooling passes the gradient to each
    window's maximum only, so through max-pools this measures less than the theory."""
    model = model.eval()
    x = torch.ones(1, in_channels, input_size, input_size, requires_grad=True)
    with torch.no_grad():
        saved = [p.detach().clone() for p in model.parameters()]
        for p in model.parameters():
            p.copy_(p.abs() + 0.01)
    try:
        out = model(x)  # (1, C', H', W')
        out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum().backward()
    finally:
        with torch.no_grad():
            for p, s in zip(model.parameters(), saved):
                p.copy_(s)
    seen = x.grad[0].abs().sum(0) > 0  # (H, W)
    rows, cols = seen.any(1).nonzero(), seen.any(0).nonzero()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


class DepthwiseSeparableConv2d(nn.Module):
    """MobileNet's factorised conv: a k x k depthwise conv (one filter per input channel,
    ``groups = in_ch``) then a 1x1 pointwise conv mixing channels.

    Weights (and multiply-adds per output pixel): ``C k^2 + C N`` against ``C N k^2`` for a
    full conv, a ratio of ``1/N + 1/k^2`` (N = out_ch). ``norm_act`` puts BatchNorm + ReLU
    after each of the two convs, as MobileNet does.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, norm_act: bool = False) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, kernel_size, stride, padding, dilation,
                                   groups=in_ch, bias=False)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.norm_act = norm_act
        if norm_act:
            self.bn1, self.bn2 = nn.BatchNorm2d(in_ch), nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, N, H', W')
        x = self.depthwise(x)
        if self.norm_act:
            x = torch.relu(self.bn1(x))
        x = self.pointwise(x)
        return torch.relu(self.bn2(x)) if self.norm_act else x


class DeformableConv2d(nn.Module):
    """Deformable convolution (Dai et al. 2017): each of the k^2 taps samples the input at its
    grid position plus a learned offset, ``y(p) = sum_k w_k x(p + p_k + dp_k(p))``, bilinearly
    interpolated. A plain conv predicts the 2 k^2 offsets per position; it starts at zero, so
    at initialisation the layer is exactly a plain conv with the same weights."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation
        reference = nn.Conv2d(in_ch, out_ch, kernel_size, bias=bias)  # for torch's init
        self.weight = nn.Parameter(reference.weight.detach().clone())
        self.bias = nn.Parameter(reference.bias.detach().clone()) if bias else None
        self.offset = nn.Conv2d(in_ch, 2 * kernel_size * kernel_size, kernel_size, stride,
                                padding, dilation)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offsets = self.offset(x)  # (B, 2 k^2, H', W'): (dy, dx) per tap and position
        from torchvision.ops import deform_conv2d  # torchvision costs 3 s to import

        return deform_conv2d(x, offsets, self.weight, self.bias, stride=self.stride,
                             padding=self.padding, dilation=self.dilation)
