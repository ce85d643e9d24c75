"""Contacts from covariation, the baseline AlphaFold 2 is measured against (MAP 6.3), and the
metric of contact prediction.

Two residues in contact mutate together; their alignment columns co-vary. Two classic scores:

- **Mutual information** (Dunn et al. 2008's APC): MI_ij = Σ_ab f_ij(a,b) log(f_ij(a,b) /
  (f_i(a) f_j(b))) from the column frequencies.
- **Mean-field DCA** (Morcos et al. 2011): the couplings of the Potts model that reproduces the
  pair frequencies, in the mean-field approximation, are minus the inverse covariance,
  J = -C⁻¹ with C_ij(a,b) = f_ij(a,b) - f_i(a) f_j(b) over q - 1 states (the last is the
  gauge), frequencies mixed with a pseudocount λ. Morcos et al. ranked pairs by direct
  information; the score here is the Frobenius norm of each zero-sum-gauged J_ij block with
  APC, which Ekeberg et al. 2013 showed ranks contacts better.

Both are then corrected by the average product (APC): S_ij - S_i· S_·j / S_··, which removes
the part of a score that only says "this column varies a lot".

The metric is top-L/k precision (CASP): the fraction of the L/k highest-scored pairs with
|i - j| >= min_separation (24 for "long range") that are true contacts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def frequencies(tokens: torch.Tensor, q: int, pseudocount: float = 0.0
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Column frequencies f_i(a) (L, q) and pair frequencies f_ij(a, b) (L, L, q, q) of an
    alignment (S, L), mixed with the uniform distribution at weight ``pseudocount``."""
    onehot = F.one_hot(tokens, q).double()  # (S, L, q)
    single = onehot.mean(0)
    pair = torch.einsum("sia,sjb->ijab", onehot, onehot) / len(tokens)
    single = (1 - pseudocount) * single + pseudocount / q
    pair = (1 - pseudocount) * pair + pseudocount / q**2
    diagonal = torch.arange(tokens.shape[1])
    # The pseudocount must not invent co-occurrence within a column: f_ii(a, b) = δ_ab f_i(a).
    pair[diagonal, diagonal] = torch.diag_embed(single)
    return single, pair


def apc(scores: torch.Tensor) -> torch.Tensor:
    """Average product correction of symmetric scores (..., L, L), diagonal excluded:
    S_ij - S_i· S_·j / S_·· (means over j != i)."""
    length = scores.shape[-1]
    off = ~torch.eye(length, dtype=torch.bool, device=scores.device)
    row = (scores * off).sum(-1) / (length - 1)  # (..., L)
    # A conserved alignment scores 0 everywhere: nothing to correct, and no 0 / 0.
    total = row.mean(-1)[..., None, None].clamp_min(1e-12)
    return (scores - row[..., :, None] * row[..., None, :] / total) * off


def mutual_information(tokens: torch.Tensor, q: int) -> torch.Tensor:
    """MI_ij (L, L) in nats between the columns of an alignment (S, L), the diagonal zero."""
    single, pair = frequencies(tokens, q)
    expected = single[:, None, :, None] * single[None, :, None, :]
    terms = torch.where(pair > 0, pair * (pair / expected.clamp_min(1e-300)).log(),
                        torch.zeros_like(pair))
    mi = terms.sum((-1, -2))
    return mi.fill_diagonal_(0)


def mean_field_couplings(tokens: torch.Tensor, q: int, pseudocount: float = 0.5
                         ) -> torch.Tensor:
    """The mean-field couplings J_ij(a, b) (L, L, q, q) = -C⁻¹ over the first q - 1 states;
    the last state is the gauge, its couplings 0 (pydca's ``compute_couplings``, laid out by
    site pair)."""
    length = tokens.shape[1]
    single, pair = frequencies(tokens, q, pseudocount)
    cov = pair - single[:, None, :, None] * single[None, :, None, :]  # (L, L, q, q)
    cov = cov[:, :, : q - 1, : q - 1].permute(0, 2, 1, 3).reshape(length * (q - 1), -1)
    coupling = -torch.linalg.inv(cov).reshape(length, q - 1, length, q - 1).permute(0, 2, 1, 3)
    return F.pad(coupling, (0, 1, 0, 1))  # (L, L, q, q): the gauge state's couplings are 0


def mean_field_dca(tokens: torch.Tensor, q: int, pseudocount: float = 0.5) -> torch.Tensor:
    """Frobenius norms (L, L) of the mean-field couplings J = -C⁻¹, each q x q block J_ij
    shifted to the zero-sum gauge first (the gauge state's zeros included, as Ekeberg et al.
    gauge); the diagonal zero."""
    coupling = mean_field_couplings(tokens, q, pseudocount)
    gauged = (coupling - coupling.mean(-1, keepdim=True) - coupling.mean(-2, keepdim=True)
              + coupling.mean((-1, -2), keepdim=True))
    return torch.linalg.matrix_norm(gauged).fill_diagonal_(0)


def apc_scores(tokens: torch.Tensor, q: int, method: str) -> torch.Tensor:
    """APC-corrected ``"mi"`` or ``"dca"`` scores (L, L) of one alignment (S, L)."""
    raw = {"mi": lambda: mutual_information(tokens, q),
           "dca": lambda: mean_field_dca(tokens, q)}[method]()
    return apc(raw)


def top_precision(scores: torch.Tensor, contacts: torch.Tensor, fraction: int = 5,
                  min_separation: int = 24) -> float:
    """Top-L/``fraction`` precision: of the L // fraction best-scored pairs i < j with
    j - i >= ``min_separation``, the fraction that are contacts (``contacts`` (L, L) bool)."""
    length = len(scores)
    i, j = torch.triu_indices(length, length, offset=min_separation)
    if len(i) == 0:
        raise ValueError(f"no pair of {length} residues is {min_separation} apart")
    top = scores[i, j].double().topk(min(max(length // fraction, 1), len(i))).indices
    return contacts[i[top], j[top]].double().mean().item()
