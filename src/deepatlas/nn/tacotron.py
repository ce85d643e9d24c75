"""The layers of Tacotron 2 (MAP 6.3; Shen et al. 2018) that are its own: the location-sensitive
attention that reads the text in order, the prenet whose dropout stays on at inference, and
the postnet that refines the predicted spectrogram.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class LocationSensitiveAttention(nn.Module):
    """Additive attention that also sees where it looked before (Chorowski et al. 2015)::

        f_i  = U * [alpha_{i-1}, sum_{k<i} alpha_k]          # conv over the text positions
        e_ij = w^T tanh(W s_i + V h_j + F f_ij + b)
        alpha_i = softmax_j(e_ij)  (padding masked),  context_i = sum_j alpha_ij h_j

    The cumulative weights are what push it forward along the text: positions already read
    carry a feature the energies learn to lower."""

    def __init__(self, query_dim: int, memory_dim: int, dim: int = 128, filters: int = 32,
                 kernel: int = 31) -> None:
        super().__init__()
        self.query = nn.Linear(query_dim, dim, bias=False)  # W
        self.memory = nn.Linear(memory_dim, dim)  # V, with b
        self.location_conv = nn.Conv1d(2, filters, kernel, padding=kernel // 2, bias=False)
        self.location = nn.Linear(filters, dim, bias=False)  # F
        self.energy = nn.Linear(dim, 1, bias=False)  # w

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """V h_j + b, once per utterance: (B, N, dim)."""
        return self.memory(memory)

    def where(self, previous: torch.Tensor, cumulative: torch.Tensor) -> torch.Tensor:
        """U * [alpha_{i-1}, sum alpha]: (B, N, filters). The convolution as one matrix product
        over unfolded windows: the same numbers as ``self.location_conv``, 3x faster on a CPU
        for a kernel this wide, forward and backward."""
        k = self.location_conv.kernel_size[0]
        x = F.pad(torch.stack([previous, cumulative], 1), (k // 2, k // 2))  # (B, 2, N + k - 1)
        windows = x.unfold(2, k, 1).permute(0, 2, 1, 3).flatten(2)  # (B, N, 2k)
        return windows @ self.location_conv.weight.flatten(1).T

    def forward(self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor,
                previous: torch.Tensor, cumulative: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, Q), keys (B, N, dim), memory (B, N, M), previous and cumulative weights
        (B, N), mask (B, N) True on padding -> context (B, M), weights (B, N)."""
        energies = self.energy(torch.tanh(
            self.query(query).unsqueeze(1) + keys + self.location(self.where(previous,
                                                                             cumulative))))
        energies = energies.squeeze(-1).masked_fill(mask, float("-inf"))  # (B, N)
        weights = energies.softmax(-1)
        return torch.bmm(weights.unsqueeze(1), memory).squeeze(1), weights


class Prenet(nn.Module):
    """Two ReLU layers with dropout p = 0.5 **always on**, at inference too: the paper's source
    of variation, and what keeps the decoder from copying its own last frame."""

    def __init__(self, n_in: int, width: int = 128, p: float = 0.5) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(n_in, width), nn.Linear(width, width)])
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = F.dropout(F.relu(layer(x)), self.p, training=True)
        return x


class Postnet(nn.Module):
    """Five 1-d convolutions (kernel 5, batch norm, tanh but the last) predicting a residual
    that sharpens the decoder's spectrogram: mel_post = mel + postnet(mel)."""

    def __init__(self, n_mels: int, width: int = 256, layers: int = 5,
                 dropout: float = 0.5) -> None:
        super().__init__()
        sizes = [n_mels] + [width] * (layers - 1) + [n_mels]
        self.convs = nn.ModuleList(nn.Sequential(
            nn.Conv1d(a, b, 5, padding=2, bias=False), nn.BatchNorm1d(b))
            for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = dropout

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, T, n_mels) -> the residual (B, T, n_mels)."""
        x = mel.transpose(1, 2)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.convs) - 1:
                x = torch.tanh(x)
            x = F.dropout(x, self.dropout, self.training)
        return x.transpose(1, 2)
