"""Recurrent networks (MAP 2.2) written from their gate equations.

Parameter names and shapes follow torch.nn.RNNCell/LSTMCell (``weight_ih`` (G*H, I),
``weight_hh`` (G*H, H), ``bias_ih``, ``bias_hh``; LSTM gates stacked in the order i, f, g, o),
so weights copy across and the outputs agree (tests/test_recurrent_graph.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class _Cell(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, gates: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(gates * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(gates * hidden_size))
        bound = 1 / math.sqrt(hidden_size)  # torch's U(-1/sqrt(H), 1/sqrt(H))
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _affine(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        # W_ih x + b_ih + W_hh h + b_hh, for all gates at once: (B, G*H)
        return x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh


class RNNCell(_Cell):
    """Elman cell: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, gates=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        return torch.tanh(self._affine(x, h))  # (B, H)


class LSTMCell(_Cell):
    """Long short-term memory (Hochreiter and Schmidhuber 1997)::

        i = s(W_ii x + b_ii + W_hi h + b_hi)     input gate
        f = s(W_if x + b_if + W_hf h + b_hf)     forget gate
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)  candidate cell
        o = s(W_io x + b_io + W_ho h + b_ho)     output gate
        c' = f * c + i * g,   h' = o * tanh(c')

    The additive cell path ``c' = f * c + ...`` lets gradients cross many steps when f ~ 1.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, gates=4)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        h, c = state
        i, f, g, o = self._affine(x, h).chunk(4, dim=1)  # each (B, H)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class LSTM(nn.Module):
    """A stack of :class:`LSTMCell` unrolled over time; ``batch_first`` input (B, T, I)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__()
        self.cells = nn.ModuleList(LSTMCell(input_size if i == 0 else hidden_size, hidden_size)
                                   for i in range(num_layers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Outputs of the last layer (B, T, H) and its final (h, c), each (B, H)."""
        for cell in self.cells:
            state = None
            outputs = []
            for t in range(x.shape[1]):
                state = cell(x[:, t], state)
                outputs.append(state[0])
            x = torch.stack(outputs, dim=1)  # (B, T, H): the next layer's input
        return x, state
