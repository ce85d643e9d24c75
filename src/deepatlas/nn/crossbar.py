"""MAP 7.2 In-memory computing: linear and convolutional layers computed by memristor
crossbars, from device physics (phase-change memory, PCM).

A crossbar multiplies a vector by a matrix in one step: input voltages drive the rows, each
device passes a current G V (Ohm's law), and each column sums its currents (Kirchhoff's law).
Conductances are positive, so a signed weight is a pair, w ~ G+ - G-. The devices follow IBM's
statistical PCM model (Nandakumar et al. 2019, fitted on a million devices), with the
constants of aihwkit's ``PCMLikeNoiseModel``; g is a conductance in units of G_max (25 uS)::

    target    g* = q_L(max(+/-w, 0) / max|w|)                  # L levels in [0, 1]
    program   g_p = max(g* + sigma_p(g*) z, 0),
              sigma_p = (0.26348 + 1.9650 g* - 1.1731 g*^2) uS / 25 uS
    drift     g_d(t) = g_p ((t + t0) / t0)^(-nu),   t0 = 20 s, t = time since programming
              nu = |mu(g*) + s(g*) z|,  mu = clip(-0.0155 ln g* + 0.0244, 0.049, 0.1)
                                        s  = clip(-0.0125 ln g* - 0.0059, 0.008, 0.045)
    1/f noise g(t) = max(g_d + |g_d| Q(g_p) sqrt(ln((t + t0 + t_r) / (2 t_r))) z, 0)
              Q = min(0.0088 / max(g_p^0.65, 1e-3), 0.2),  t_r = 250 ns
    DAC       x_q = q_dac(x / max|x|)  (per input vector or image, dac_bits, in [-1, 1])
    ADC       y_q = q_adc(clip((G+ - G-) x_q + sigma_out z, -out_bound, out_bound))  (adc_bits)
              (bound management: while an output saturates, x_q = q_dac(x / (2^k max|x|)))
    output    y = y_q 2^k max|x| max|w| / c(t) + b                       # b stays digital

Small conductances drift faster (nu up to 0.1) and are noisier (Q up to 0.2) than large ones,
so drift distorts the weights as well as shrinking them. The 1/f noise accumulated up to t is
drawn once per read-out time, as aihwkit does. The periphery adds Gaussian noise of std
sigma_out = 0.06 to every output of every read, in the units above (aihwkit's
``IOParameters.out_noise``, on by default in its ``InferenceRPUConfig``): it does not drift,
so as the currents shrink it weighs more; the energy and latency of the converters and of
the digital bias and activations are not modelled. Global drift compensation (Joshi et al.
2020) takes the array's summed response to a fixed all-ones input as programmed (before
drift and 1/f noise) and again at time t, exactly, and divides the output by the ratio c(t)
of the two, undoing the drift that all devices share. (aihwkit's ``GlobalDriftCompensation``
reads one-hot inputs through the noisy periphery instead, the mean |output|; its
``...WithExactReference`` variant takes the baseline from an exact all-ones read.)
Hardware-aware training (Joshi et al. 2020) adds N(0, (train_noise max|w|)^2) to the weights
on every training forward, so the network learns weights that tolerate the noise above.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.errors import UserError


@dataclass(frozen=True)
class PCMDevice:
    """A PCM device (IBM's statistical model, aihwkit's ``PCMLikeNoiseModel`` constants) and
    its periphery; the three scales switch a source of non-ideality off (0) or amplify it."""

    levels: int = 32  # distinct conductances a device is programmed to
    prog_sigma_us: tuple[float, ...] = (0.26348, 1.9650, -1.1731)  # sigma_p(g*): sum c_i g*^i
    t0: float = 20.0  # seconds: drift's reference, the first read after programming
    t_read: float = 250e-9  # seconds: the read duration of the 1/f-noise fit
    prog_noise_scale: float = 1.0
    read_noise_scale: float = 1.0
    drift_scale: float = 1.0
    dac_bits: int = 8
    adc_bits: int = 8
    out_bound: float = 10.0  # the ADC's range, in units of one fully-on device and input
    out_noise: float = 0.06  # std of the output noise of every read, in the same units
    bound_halvings: int = 10  # bound management (aihwkit's ITERATIVE): re-reads at half input


def quantize(x: torch.Tensor, bits: int, bound: float = 1.0) -> torch.Tensor:
    """Uniform symmetric quantisation of ``x`` clipped to [-bound, bound] on 2^bits - 1
    levels (a DAC or an ADC)."""
    step = 2 * bound / (2**bits - 2)
    return torch.round(x.clamp(-bound, bound) / step) * step


FIT_G_MAX_US = 25.0  # the G_max (microsiemens) at which the PCM measurements were fitted


def programming_sigma(target: torch.Tensor, pcm: PCMDevice) -> torch.Tensor:
    """The programming noise of devices written to ``target`` g* (in G_max), in G_max:
    sigma_p = (c0 + c1 g* + c2 g*^2) uS / 25 uS (relative to G_max, whatever G_max is)."""
    sigma = sum(c * target**i for i, c in enumerate(pcm.prog_sigma_us))
    return pcm.prog_noise_scale * sigma.clamp_min(0) / FIT_G_MAX_US


def drift_exponent_stats(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, s) of the drift exponent nu ~ |N(mu, s^2)| of devices written to ``target`` g*
    (in G_max): mu = clip(-0.0155 ln g* + 0.0244, 0.049, 0.1), s = clip(-0.0125 ln g* -
    0.0059, 0.008, 0.045); small conductances drift faster and more unevenly."""
    log_g = target.clamp_min(1e-7).log()
    mean = (-0.0155 * log_g + 0.0244).clamp(0.049, 0.1)
    spread = (-0.0125 * log_g - 0.0059).clamp(0.008, 0.045)
    return mean, spread


def read_noise_sigma(programmed: torch.Tensor, seconds: float, pcm: PCMDevice) -> torch.Tensor:
    """The relative 1/f noise accumulated ``seconds`` after programming:
    Q(g_p) sqrt(ln((t + t0 + t_r) / (2 t_r)))."""
    q = (0.0088 / programmed.abs().pow(0.65).clamp_min(1e-3)).clamp_max(0.2)
    t = seconds + pcm.t0
    return pcm.read_noise_scale * q * math.sqrt(math.log((t + pcm.t_read) / (2 * pcm.t_read)))


class Crossbar:
    """The devices and periphery of a crossbar layer: the layer's weight, viewed as a matrix
    (out, in), lives in conductance pairs once :meth:`program` has run. Mixed into
    :class:`AnalogLinear` and :class:`AnalogConv2d`, which say how inputs reach the rows."""

    weight: torch.Tensor

    def _init_crossbar(self, train_noise: float, pcm: PCMDevice) -> None:
        self.train_noise, self.pcm = train_noise, pcm
        self.seconds = 0.0  # since programming, of the conductances being read
        self.compensate = False
        self.programmed = False
        # The 1/f noise's own stream, on the CPU: the same draws on every device, and a
        # programmed layer may still move with .to(device).
        self.read_noise_generator: torch.Generator | None = None
        self.output_noise_generator: torch.Generator | None = None  # each forward's draw
        # The devices exist once programmed (so DDP has nothing to broadcast before).
        for name in ("g_plus", "g_minus", "nu_plus", "nu_minus", "w_max", "conductance",
                     "reference"):
            self.register_buffer(name, None, persistent=False)  # type: ignore[attr-defined]

    @torch.no_grad()
    def program(self, generator: torch.Generator | None = None) -> None:
        """Write the current weights into conductance pairs, with programming noise and each
        device's drift exponent drawn from ``generator`` (a CPU generator; the 1/f noise of
        later read-outs is seeded from it too), and read them out at t = 0. Program again
        after changing the weights: the crossbar keeps what it was given, as a chip would."""
        pcm, weight = self.pcm, self.weight.flatten(1)  # (out, in)

        def draw() -> torch.Tensor:
            return torch.randn(weight.shape, generator=generator).to(weight)

        self.w_max = weight.abs().max().clamp_min(1e-12)
        top = pcm.levels - 1
        for sign, g, nu in ((1, "g_plus", "nu_plus"), (-1, "g_minus", "nu_minus")):
            target = torch.round((sign * weight / self.w_max).clamp_min(0) * top) / top
            setattr(self, g, (target + programming_sigma(target, pcm) * draw()).clamp_min(0))
            mu, spread = drift_exponent_stats(target)
            setattr(self, nu, pcm.drift_scale * (mu + spread * draw()).abs())
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        self.read_noise_generator = torch.Generator().manual_seed(seed)
        self.output_noise_generator = torch.Generator().manual_seed(seed + 1)
        self.programmed = True
        # Compensation's baseline: the programmed array before any drift or 1/f noise.
        self.reference = self._calibration(self.g_plus - self.g_minus)
        self.read_out(0.0)

    @torch.no_grad()
    def read_out(self, seconds: float, compensate: bool = False) -> None:
        """Let the devices drift to ``seconds`` after programming and draw the 1/f noise
        accumulated by then; later forwards read these conductances. The draw continues the
        layer's noise stream, so it depends on the read-outs before it (a sequence of times
        read twice, raw and compensated, sees the same devices)."""
        if not self.programmed:
            raise UserError("this crossbar holds no weights yet: program it first "
                            "(deepatlas.nn.crossbar.program_model)")
        if seconds < 0:
            raise UserError(f"a crossbar is read at a time since programming >= 0 s; "
                            f"got {seconds} s")
        self.seconds, self.compensate = float(seconds), compensate
        factor = (seconds + self.pcm.t0) / self.pcm.t0
        pair = []
        for g, nu in ((self.g_plus, self.nu_plus), (self.g_minus, self.nu_minus)):
            drifted = g * torch.full_like(g, factor).pow(-nu)
            noise = torch.randn(g.shape, generator=self.read_noise_generator).to(g)
            sigma = read_noise_sigma(g, seconds, self.pcm)
            pair.append((drifted + drifted.abs() * sigma * noise).clamp_min(0))
        self.conductance = pair[0] - pair[1]

    @staticmethod
    def _calibration(conductance: torch.Tensor) -> torch.Tensor:
        """The summed |response| of an array (out, in) to the all-ones input."""
        return conductance.sum(1).abs().sum()

    def _digital(self) -> bool:
        return self.training or not self.programmed  # type: ignore[attr-defined]

    def _training_weight(self) -> torch.Tensor:
        """The weight a digital forward uses: with N(0, (train_noise max|w|)^2) added while
        training hardware-aware."""
        if self.training and self.train_noise > 0:  # type: ignore[attr-defined]
            scale = self.weight.detach().abs().max()
            return self.weight + self.train_noise * scale * torch.randn_like(self.weight)
        return self.weight

    def _through_crossbar(self, x: torch.Tensor, x_max: torch.Tensor,
                          product: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                          ) -> torch.Tensor:
        """The analog forward without the bias: DAC (``x`` over its range ``x_max``), the
        currents ``product(x_q, G)`` with G shaped like the weight, bound management, ADC,
        compensation, and back to the weights' units."""
        pcm = self.pcm
        g = self.conductance.view_as(self.weight)
        scale = x_max.detach()  # (B, 1, ...): each input's DAC range
        y = product(quantize(x / scale, pcm.dac_bits), g)
        for _ in range(pcm.bound_halvings):  # a saturated read is repeated at half the input
            over = (y.detach().abs().flatten(1).amax(1) >= pcm.out_bound).nonzero()[:, 0]
            if not len(over):
                break
            # Out of place (index_put, not index_put_): autograd still needs the old values.
            scale = scale.index_put((over,), scale[over] * 2)
            y = y.index_put((over,), product(quantize(x[over] / scale[over], pcm.dac_bits), g))
        if pcm.out_noise > 0:  # the periphery's noise, fresh on every read
            y = y + pcm.out_noise * torch.randn(y.shape, generator=self.output_noise_generator,
                                                dtype=y.dtype).to(y.device)
        y = quantize(y, pcm.adc_bits, pcm.out_bound)
        if self.compensate:  # the drift that every device shares, measured and divided out
            y = y * (self.reference / self._calibration(self.conductance))
        return y * scale * self.w_max

    def extra_repr(self) -> str:
        read = f", read at {self.seconds:g} s" if self.programmed else ""
        return (super().extra_repr()  # type: ignore[misc]
                + f", train_noise={self.train_noise}{read}")


class AnalogLinear(Crossbar, nn.Linear):
    """``nn.Linear`` whose inference, once :meth:`program` has run, goes through a simulated
    crossbar (see the module docstring); training is digital (with weight noise when
    ``train_noise`` > 0)."""

    def __init__(self, in_features: int, out_features: int, train_noise: float = 0.0,
                 pcm: PCMDevice = PCMDevice()) -> None:
        nn.Linear.__init__(self, in_features, out_features)
        self._init_crossbar(train_noise, pcm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._digital():
            return F.linear(x, self._training_weight(), self.bias)
        x_max = x.abs().amax(-1, keepdim=True).clamp_min(1e-12)  # (B, 1): per input vector
        return self._through_crossbar(x, x_max, F.linear) + self.bias


class AnalogConv2d(Crossbar, nn.Conv2d):
    """``nn.Conv2d`` on a crossbar: the kernel is a matrix (out, in x kh x kw) whose rows every
    receptive field drives in turn, as in aihwkit's ``AnalogConv2d``. Unlike aihwkit, the
    DAC's range and the bound management act per input image, not per receptive field (one
    saturated output halves the whole image's input), so the read is one ``conv2d`` with the
    conductances as its kernel instead of an ``unfold`` of every receptive field."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, padding: int = 0, train_noise: float = 0.0,
                 pcm: PCMDevice = PCMDevice()) -> None:
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride, padding)
        self._init_crossbar(train_noise, pcm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._digital():
            return self._conv_forward(x, self._training_weight(), self.bias)
        x_max = x.abs().amax((1, 2, 3), keepdim=True).clamp_min(1e-12)  # (B, 1, 1, 1)
        y = self._through_crossbar(x, x_max, lambda x_q, g: self._conv_forward(x_q, g, None))
        return y + self.bias[:, None, None]


def analog_layers(model: nn.Module) -> list[Crossbar]:
    """The crossbar layers of ``model``, in order."""
    return [m for m in model.modules() if isinstance(m, Crossbar)]


def program_model(model: nn.Module, seed: int) -> None:
    """Program every crossbar of ``model`` (one draw of the devices, seeded)."""
    generator = torch.Generator().manual_seed(seed)
    for layer in analog_layers(model):
        layer.program(generator)


def set_inference_time(model: nn.Module, seconds: float, compensate: bool = False) -> None:
    """Read every crossbar ``seconds`` after programming (a fresh draw of the accumulated 1/f
    noise), with or without global drift compensation."""
    for layer in analog_layers(model):
        layer.read_out(seconds, compensate)


__all__ = ["AnalogConv2d", "AnalogLinear", "Crossbar", "PCMDevice", "analog_layers",
           "drift_exponent_stats", "program_model", "programming_sigma", "quantize", "read_noise_sigma",
           "set_inference_time"]
