"""MAP 7.1: a convolutional spiking network, and what it costs in synaptic operations.

``snn-conv`` runs ``timesteps`` steps of::

    image -> [conv-BN-maxpool] -> LIF -> [conv-BN-maxpool] -> LIF -> [linear] -> LIF
          -> [linear] -> mean over steps = logits

The image is the input current at every step (direct encoding, as SpikingJelly's conv SNNs
do), so the first conv runs once and its output is repeated; every later layer sees only
spikes. The readout integrates the last layer's weighted spikes without firing (a
non-spiking output layer), and its mean over steps is the logit, so cross-entropy trains it.
Pooling comes before each spiking layer (max of the currents, not of the spikes): a quarter
of the neurons to simulate, which on a CPU is most of the cost.

Cost (``synaptic_operations``): an ANN layer does one multiply-accumulate (MAC) per weight
use; a spiking layer does one accumulate (AC) per spike and outgoing synapse, because a
0/1 input needs no multiply. The energy model is Horowitz's 45 nm figures (ISSCC 2014) for
32-bit floats: MAC 4.6 pJ (3.7 multiply + 0.9 add), AC 0.9 pJ. Left out on both sides: memory
traffic, and on the spiking side the membrane updates and BatchNorm's scale (about 2% of the
ANN's MACs at width 16).
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.models.registry import register_model
from deepatlas.nn.spiking import LIF

ENERGY_PJ = {"mac": 4.6, "ac": 0.9}  # Horowitz (2014), 45 nm, 32-bit float


class ConvSNN(nn.Module):
    """The network of the module docstring; after each forward, ``spikes_fired`` holds the
    spikes per image of each LIF layer (summed over steps)."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int, width: int = 32,
                 hidden: int = 128, timesteps: int = 4, beta: float = 0.5,
                 surrogate: str = "arctan") -> None:
        super().__init__()
        self.timesteps = timesteps
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width))
        self.conv = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(2 * width))
        side = image_size // 4
        self.fc = nn.Linear(2 * width * side * side, hidden)
        self.readout = nn.Linear(hidden, num_classes)
        self.lifs = nn.ModuleList(LIF(beta, 1.0, surrogate) for _ in range(3))
        self.pool = nn.MaxPool2d(2)
        self.spikes_fired: list[torch.Tensor] = []  # the last batch's, per image and layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = self.timesteps, x.shape[0]
        current = self.pool(self.stem(x))  # (B, C, H/2, W/2): the same current every step
        a1 = self.lifs[0](current.unsqueeze(0).expand(t, *current.shape))  # (T, B, C, H/2, W/2)
        c2 = self.pool(self.conv(a1.flatten(0, 1)))  # (T*B, 2C, H/4, W/4)
        a2 = self.lifs[1](c2.unflatten(0, (t, b)))  # (T, B, 2C, H/4, W/4)
        a3 = self.lifs[2](self.fc(a2.flatten(2)).view(t, b, -1))  # (T, B, hidden)
        # Per image, over all steps: the spikes each LIF layer fired; each one reaches the
        # next weight layer's fan-out, which is what costs synaptic operations.
        self.spikes_fired = [a.detach().sum() / b for a in (a1, a2, a3)]
        return self.readout(a3).mean(0)  # (B, K): the mean over steps

    def synaptic_operations(self, spikes_fired: list[float], image_size: int
                            ) -> dict[str, float]:
        """Per image: the ANN twin's MACs, and this network's MACs (the analog stem) and ACs
        (one per spike and outgoing synapse; border effects of the 3x3 conv ignored, so a
        slight over-count), given the mean ``spikes_fired`` per layer."""
        stem_macs = self.stem[0].weight.numel() * image_size**2  # every output, every weight
        half = image_size // 2  # conv 2 runs on the pooled map
        conv_fanout = self.conv[0].out_channels * self.conv[0].kernel_size[0] ** 2
        ann_macs = float(stem_macs + conv_fanout * self.conv[0].in_channels * half**2
                         + self.fc.weight.numel() + self.readout.weight.numel())
        fanouts = (conv_fanout, self.fc.out_features, self.readout.out_features)
        acs = float(sum(n * f for n, f in zip(spikes_fired, fanouts)))
        snn_energy = stem_macs * ENERGY_PJ["mac"] + acs * ENERGY_PJ["ac"]
        return {"ann_macs": ann_macs, "snn_stem_macs": float(stem_macs), "snn_acs": acs,
                "ann_energy_nj": ann_macs * ENERGY_PJ["mac"] / 1e3,
                "snn_energy_nj": snn_energy / 1e3}


@register_model
def snn_conv(*, in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
             width: int = 32, hidden: int = 128, timesteps: int = 4, beta: float = 0.5,
             surrogate: str = "arctan") -> nn.Module:
    """A two-conv spiking network of LIF neurons (MAP 7.1), ``timesteps`` steps, direct
    encoding, arctan or fast-sigmoid surrogate gradient."""
    return ConvSNN(in_channels, image_size, num_classes, width, hidden, timesteps, beta,
                   surrogate)
