"""MAP 7.2 In-memory computing: a linear layer computed by a memristor crossbar, from device
physics (phase-change memory, PCM).

A crossbar multiplies a vector by a matrix in one step: input voltages drive the rows, each
device passes a current G V (Ohm's law), and each column sums its currents (Kirchhoff's law).
Conductances are positive, so a signed weight is a pair, w ~ G+ - G-. What the layer models::

    program   G+/- = q_L(max(+/-w, 0) / w_max) + N(0, sigma_prog^2)     # L levels in [0, 1]
    drift     G(t) = G(t0) (t / t0)^(-nu),  nu ~ N(nu_mean, nu_std^2) per device    # PCM
    read      G_read = G(t) + N(0, sigma_read^2)                          # every read
    DAC       x_q = q_dac(x / max|x|)  (per input vector, dac_bits, in [-1, 1])
    ADC       y_q = q_adc(clip((G+ - G-) x_q, -out_bound, out_bound))     (adc_bits)
    output    y = y_q max|x| w_max / c(t) + b                            # b stays digital

Conductances are in units of G_max (a PCM device's ~25 uS). The energy and latency of the
converters and of the digital bias and ReLU are not modelled. Global drift compensation
(Joshi et al. 2020; aihwkit's ``GlobalDriftCompensation``) reads the array's response to a
fixed all-ones input right after programming and again at time t, and divides the output by
the ratio c(t) of the two, undoing the drift that all devices share. Hardware-aware training
(Joshi et al. 2020) adds N(0, (train_noise w_max)^2) to the weights on every training
forward, so the network learns weights that tolerate the noise above.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.errors import UserError


@dataclass(frozen=True)
class PCMDevice:
    """A PCM-like device and its periphery. Defaults in the range of IBM's PCM models
    (aihwkit's ``PCMLikeNoiseModel``: programming noise a few % of G_max, drift exponent
    about 0.05 with a device-to-device spread) and 8-bit converters."""

    levels: int = 32  # distinct conductances a device is programmed to
    prog_noise: float = 0.03  # sigma of programming, in G_max
    read_noise: float = 0.01  # sigma of each read, in G_max
    drift_nu: float = 0.05  # mean drift exponent
    drift_nu_std: float = 0.02  # its spread between devices
    t0: float = 1.0  # seconds after programming at which G(t0) is the programmed value
    dac_bits: int = 8
    adc_bits: int = 8
    out_bound: float = 10.0  # the ADC's range, in units of one fully-on device and input


def quantize(x: torch.Tensor, bits: int, bound: float = 1.0) -> torch.Tensor:
    """Uniform symmetric quantisation of ``x`` clipped to [-bound, bound] on 2^bits - 1
    levels (a DAC or an ADC)."""
    step = 2 * bound / (2**bits - 2)
    return torch.round(x.clamp(-bound, bound) / step) * step


class AnalogLinear(nn.Linear):
    """``nn.Linear`` whose inference, once :meth:`program` has run, goes through a simulated
    crossbar (see the module docstring); training is digital (with weight noise when
    ``train_noise`` > 0)."""

    def __init__(self, in_features: int, out_features: int, train_noise: float = 0.0,
                 pcm: PCMDevice = PCMDevice()) -> None:
        super().__init__(in_features, out_features)
        self.train_noise, self.pcm = train_noise, pcm
        self.time = pcm.t0  # seconds since programming
        self.compensate = False
        self.programmed = False
        self.reads: torch.Generator | None = None  # the read noise's own stream
        # The devices exist once programmed (so DDP has nothing to broadcast before).
        for name in ("g_plus", "g_minus", "nu_plus", "nu_minus", "w_max", "reference"):
            self.register_buffer(name, None, persistent=False)

    @torch.no_grad()
    def program(self, generator: torch.Generator | None = None) -> None:
        """Write the current weights into conductance pairs, with programming noise and each
        device's drift exponent drawn from ``generator`` (a CPU generator; the read noise of
        later reads is seeded from it too). Program again after changing the weights: the
        crossbar keeps what it was given, as a chip would."""
        pcm, weight = self.pcm, self.weight

        def draw() -> torch.Tensor:
            return torch.randn(weight.shape, generator=generator).to(weight)

        self.w_max = weight.abs().max().clamp_min(1e-12)
        target = weight / self.w_max  # in [-1, 1]
        top = pcm.levels - 1
        for name, sign in (("g_plus", 1), ("g_minus", -1)):
            levels = torch.round((sign * target).clamp_min(0) * top) / top
            setattr(self, name, (levels + pcm.prog_noise * draw()).clamp_min(0))
        self.nu_plus = (pcm.drift_nu + pcm.drift_nu_std * draw()).clamp_min(0)
        self.nu_minus = (pcm.drift_nu + pcm.drift_nu_std * draw()).clamp_min(0)
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        self.reads = torch.Generator(weight.device).manual_seed(seed)
        self.programmed = True
        self.time = pcm.t0
        self.reference = self._calibration()

    def _conductance(self) -> torch.Tensor:
        """G+ - G- at ``self.time``: G(t) = G(t0) (t / t0)^(-nu)."""
        ratio = torch.tensor(self.time / self.pcm.t0, dtype=self.g_plus.dtype,
                             device=self.g_plus.device)
        return self.g_plus * ratio.pow(-self.nu_plus) - self.g_minus * ratio.pow(-self.nu_minus)

    def _calibration(self) -> torch.Tensor:
        """The summed |response| of the array to the all-ones input (noise-free read)."""
        g = self._conductance()
        return (g @ torch.ones(self.in_features, dtype=g.dtype, device=g.device)).abs().sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.programmed:
            weight = self.weight
            if self.training and self.train_noise > 0:  # hardware-aware training
                scale = self.weight.detach().abs().max()
                weight = weight + self.train_noise * scale * torch.randn_like(weight)
            return F.linear(x, weight, self.bias)
        pcm = self.pcm
        x_max = x.abs().amax(-1, keepdim=True).clamp_min(1e-12)  # (B, 1): per-vector range
        x_q = quantize(x / x_max, pcm.dac_bits)
        g = self._conductance()
        g = g + pcm.read_noise * torch.randn(g.shape, generator=self.reads, device=g.device,
                                             dtype=g.dtype)
        y = quantize(x_q @ g.T, pcm.adc_bits, pcm.out_bound)  # (B, out)
        if self.compensate:  # the drift that every device shares, measured and divided out
            y = y * (self.reference / self._calibration())
        return y * x_max * self.w_max + self.bias

    def extra_repr(self) -> str:
        return super().extra_repr() + f", train_noise={self.train_noise}"


def analog_layers(model: nn.Module) -> list[AnalogLinear]:
    """The crossbar layers of ``model``, in order."""
    return [m for m in model.modules() if isinstance(m, AnalogLinear)]


def program_model(model: nn.Module, seed: int) -> None:
    """Program every crossbar of ``model`` (one draw of the devices, seeded)."""
    generator = torch.Generator().manual_seed(seed)
    for layer in analog_layers(model):
        layer.program(generator)


def set_inference_time(model: nn.Module, seconds: float, compensate: bool = False) -> None:
    """Read every crossbar ``seconds`` after programming, with or without global drift
    compensation."""
    for layer in analog_layers(model):
        if seconds < layer.pcm.t0:
            raise UserError(f"the drift model G(t) = G(t0) (t / t0)^-nu starts at t0 = "
                            f"{layer.pcm.t0} s after programming; got {seconds} s")
        layer.time, layer.compensate = float(seconds), compensate


__all__ = ["AnalogLinear", "PCMDevice", "analog_layers", "program_model", "quantize",
           "set_inference_time"]
