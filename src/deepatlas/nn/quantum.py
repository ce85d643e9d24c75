"""MAP 7.5 Quantum neural networks: a statevector simulator in torch, from the gate matrices.

A register of ``n`` qubits is a unit vector |psi> in C^(2^n), held as a tensor of shape
(B, 2, ..., 2): a batch axis, then one axis per wire, wire 0 first (the most significant bit,
as PennyLane orders it). Every gate is a small matrix applied along its wires' axes, so
autograd differentiates a circuit like any other torch code. The gates::

    RX(t) = exp(-i t X / 2) = [[cos t/2, -i sin t/2], [-i sin t/2, cos t/2]]
    RY(t) = exp(-i t Y / 2) = [[cos t/2,   -sin t/2], [   sin t/2, cos t/2]]
    RZ(t) = exp(-i t Z / 2) = diag(exp(-i t/2), exp(i t/2))
    CNOT(c, t): |..c..t..> -> |..c..(t XOR c)..>      CZ(a, b): -1 where both are 1
    <Z_w> = sum_k |psi_k|^2 (1 - 2 bit_w(k));     <Z_a Z_b> multiplies the signs

Each rotation is exp(-i t P / 2) with P^2 = 1, so the parameter-shift rule is exact (Mitarai
et al. 2018; Schuld et al. 2019): d<O>/dt = (<O>(t + pi/2) - <O>(t - pi/2)) / 2.
``parameter_shift_grad`` computes it, as hardware would, from circuit evaluations alone.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch

from deepatlas.errors import UserError

# States alive at once without autograd: the input, the output and an einsum's workspace.
STATE_COPIES = 4


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes free on ``device``: the GPU's free memory, or MemAvailable on Linux (else the
    physical memory)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_register(qubits: int, batch: int = 1, dtype: torch.dtype = torch.complex64,
                   memory: int | None = None, states: int = STATE_COPIES,
                   device: torch.device | str = "cpu") -> None:
    """Refuse, before allocating, a register this machine cannot hold: ``states`` copies
    (autograd keeps one per gate) of ``batch`` states of 2^qubits amplitudes."""
    if not isinstance(qubits, int) or qubits < 1:
        raise UserError(f"the number of qubits must be a whole number >= 1, got {qubits!r}")
    memory = available_memory(device) if memory is None else memory
    per_amplitude = torch.empty((), dtype=dtype).element_size() * states * max(batch, 1)
    need = per_amplitude * 2**qubits
    if need > memory:
        most = int(math.log2(memory / per_amplitude)) if memory >= 2 * per_amplitude else 0
        advice = (f"use at most {most} qubits, or a smaller batch" if most >= 1
                  else "use a smaller batch")
        raise UserError(f"{qubits} qubits need {need / 2**30:,.1f} GiB for a batch of {batch} "
                        f"(2^{qubits} amplitudes x {per_amplitude // max(batch, 1)} bytes); "
                        f"this machine has {memory / 2**30:.1f} GiB free: {advice}")


def zero_state(batch: int, qubits: int, dtype: torch.dtype = torch.complex64,
               device: torch.device | str = "cpu", states: int = STATE_COPIES) -> torch.Tensor:
    """|0...0> for each of ``batch`` registers: (B, 2, ..., 2), after checking that
    ``states`` copies of it fit (see :func:`check_register`)."""
    check_register(qubits, batch, dtype, states=states, device=device)
    state = torch.zeros(batch, 2**qubits, dtype=dtype, device=device)
    state[:, 0] = 1
    return state.view(batch, *[2] * qubits)


def _cos_sin(theta: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    half = theta / 2
    return torch.cos(half).to(dtype), torch.sin(half).to(dtype)


def rx(theta: torch.Tensor, dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """RX(theta) for each angle: (..., 2, 2)."""
    c, s = _cos_sin(theta, dtype)
    return torch.stack([torch.stack([c, -1j * s], -1), torch.stack([-1j * s, c], -1)], -2)


def ry(theta: torch.Tensor, dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """RY(theta) for each angle: (..., 2, 2)."""
    c, s = _cos_sin(theta, dtype)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def rz(theta: torch.Tensor, dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """RZ(theta) for each angle: (..., 2, 2)."""
    c, s = _cos_sin(theta, dtype)
    zero = torch.zeros_like(c)
    return torch.stack([torch.stack([c - 1j * s, zero], -1),
                        torch.stack([zero, c + 1j * s], -1)], -2)


ROTATIONS: dict[str, Callable[..., torch.Tensor]] = {"RX": rx, "RY": ry, "RZ": rz}


def apply_gate(state: torch.Tensor, gate: torch.Tensor, wire: int) -> torch.Tensor:
    """U on ``wire``: ``gate`` is (2, 2) for the whole batch or (B, 2, 2), one per register."""
    batch, qubits = state.shape[0], state.ndim - 1
    view = state.reshape(batch, 2**wire, 2, 2 ** (qubits - wire - 1))  # (B, left, 2, right)
    gate = gate.expand(batch, 2, 2) if gate.ndim == 2 else gate
    return torch.einsum("bij,bljr->blir", gate, view).reshape(state.shape)


def _check_pair(state: torch.Tensor, a: int, b: int) -> None:
    qubits = state.ndim - 1
    if a == b or not (0 <= a < qubits and 0 <= b < qubits):
        raise ValueError(f"a two-qubit gate needs two different wires of 0..{qubits - 1}, "
                         f"got {a} and {b}")


def cnot(state: torch.Tensor, control: int, target: int) -> torch.Tensor:
    """Flip ``target`` where ``control`` is 1: swap the two target halves of the control=1
    half."""
    _check_pair(state, control, target)
    off, on = state.unbind(control + 1)  # each (B, 2, ..., 2) with the control axis gone
    flipped = on.flip(target + 1 - (target > control))
    return torch.stack([off, flipped], control + 1)


def cz(state: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """A phase of -1 on the amplitudes where wires ``a`` and ``b`` are both 1."""
    _check_pair(state, a, b)
    shape = [1] * state.ndim
    shape[a + 1] = shape[b + 1] = 2
    sign = torch.ones(2, 2, dtype=state.dtype, device=state.device)
    sign[1, 1] = -1
    return state * sign.view(shape)


def expval_z(state: torch.Tensor, *wires: int) -> torch.Tensor:
    """<Z_a Z_b ...> on ``wires`` for each register: (B,). One wire gives <Z_w>."""
    probs = state.abs().square()  # (B, 2, ..., 2)
    sign = torch.ones((1,) * state.ndim, dtype=probs.dtype, device=state.device)
    for wire in wires:  # Z's eigenvalue on a basis state: +1 where the bit is 0, -1 where 1
        shape = [1] * state.ndim
        shape[wire + 1] = 2
        sign = sign * torch.tensor([1.0, -1.0], dtype=probs.dtype,
                                   device=state.device).view(shape)
    return (probs * sign).flatten(1).sum(1)


def parameter_shift_grad(circuit: Callable[[torch.Tensor], torch.Tensor],
                         params: torch.Tensor) -> torch.Tensor:
    """d circuit(params) / d params by the parameter-shift rule, for a circuit whose every
    parameter enters through one rotation exp(-i t P / 2); ``circuit`` returns a scalar."""
    flat = params.detach().reshape(-1)
    grads = torch.empty_like(flat)
    with torch.no_grad():
        for k in range(len(flat)):
            shift = torch.zeros_like(flat)
            shift[k] = math.pi / 2
            plus = circuit((flat + shift).view_as(params))
            minus = circuit((flat - shift).view_as(params))
            grads[k] = (plus - minus) / 2
    return grads.view_as(params)


__all__ = ["ROTATIONS", "apply_gate", "check_register", "cnot", "cz", "expval_z",
           "parameter_shift_grad", "rx", "ry", "rz", "zero_state"]
