"""Protein families with known couplings, for contact prediction (MAP 6.3, AlphaFold 2).

A family is a window of ``L`` residues of a real chain from ``proteins`` (CA coordinates from
the PDB). Its alignment is drawn from a Potts model whose couplings sit exactly on that fold's
contacts (CA-CA distance below 8 A):

    P(s) ∝ exp( Σ_i h_i(s_i) + Σ_{i<j} J_ij(s_i, s_j) ),   J_ij = 0 unless i, j are in contact,

with fields h_i(a) ~ N(0, σ_h²) and couplings J_ij(a, b) ~ N(0, σ_J²), over ``q`` states (20
amino acids). This is how coevolution methods are benchmarked when the truth must be known
exactly (e.g. Morcos et al. 2011, Ekeberg et al. 2013 on synthetic data): a coupling leaves a
correlation between the two columns, and the contact map is a real protein's.

Sequences come from Gibbs sampling, each from its own chain started uniformly at random and
run ``sweeps`` sweeps: the ``S`` sequences of an alignment are independent draws, so there is
no phylogeny to correct for (real alignments need sequence reweighting; these do not).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch

CONTACT_A = 8.0  # CA-CA distance of a contact, in angstroms (CASP's definition)
# Distogram bins (AlphaFold 2's head, coarser): < 4, 4-6, ..., 18-20, >= 20 A; the first three
# are the contacts.
BIN_EDGES = (4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0)
CONTACT_BINS = 3


@dataclass
class Families:
    """Alignments and the true geometry of ``F`` families of ``L`` residues."""

    tokens: torch.Tensor  # (F, S, L) int64 in [0, q): S sequences of each family
    distances: torch.Tensor  # (F, L, L) float32, CA-CA distances in angstroms
    chain: list[str]  # (F,) the id of the chain each family's fold comes from
    baselines: dict[str, float] | None = None  # the covariation baselines, once computed

    def __len__(self) -> int:
        return len(self.tokens)


def contact_map(ca: torch.Tensor, cutoff: float = CONTACT_A) -> torch.Tensor:
    """(L, L) bool: CA atoms closer than ``cutoff`` angstroms, the diagonal excluded."""
    close = torch.cdist(ca, ca) < cutoff
    return close & ~torch.eye(len(ca), dtype=torch.bool, device=ca.device)


def distance_bins(distances: torch.Tensor) -> torch.Tensor:
    """The distogram class of each distance: the number of ``BIN_EDGES`` it reaches."""
    return torch.bucketize(distances, torch.tensor(BIN_EDGES, device=distances.device),
                           right=True)


def random_potts(contacts: torch.Tensor, q: int, field_std: float, coupling_std: float,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fields and couplings on ``contacts`` (F, L, L), in the neighbour-list layout Gibbs
    sampling wants: h (F, L, q); nbr (F, L, D), each residue's D contacts padded with itself;
    coupling (F, L, D, q, q), ``coupling[f, i, d, a, b] = J_{i, nbr[i, d]}(a, b)`` (zero on
    padding), symmetric: J_ji(b, a) = J_ij(a, b)."""
    f, length, _ = contacts.shape
    h = field_std * torch.randn(f, length, q, generator=generator)
    upper = coupling_std * torch.randn(f, length, length, q, q, generator=generator)
    upper = upper * contacts.triu(1)[..., None, None]
    dense = upper + upper.permute(0, 2, 1, 4, 3)  # J_ji(b, a) = J_ij(a, b)
    degree = int(contacts.sum(-1).max())
    # Each residue's contacts first (stable sort on "not a contact"), padded with itself.
    order = (~contacts).to(torch.int8).argsort(dim=-1, stable=True)[..., :degree]
    real = contacts.gather(-1, order)  # (F, L, D)
    own = torch.arange(length).view(1, length, 1).expand_as(order)
    nbr = torch.where(real, order, own)
    coupling = dense.gather(2, nbr[..., None, None].expand(-1, -1, -1, q, q))
    return h, nbr, coupling * real[..., None, None]


def gibbs_sample(h: torch.Tensor, nbr: torch.Tensor, coupling: torch.Tensor, n: int,
                 sweeps: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` independent sequences (F, n, L) of each Potts model: n chains from uniform starts,
    ``sweeps`` sweeps of site-by-site Gibbs updates,
    P(s_i = a | s_rest) ∝ exp(h_i(a) + Σ_{j ∈ N(i)} J_ij(a, s_j)),
    drawn with the Gumbel-max trick."""
    f, length, q = h.shape
    degree = nbr.shape[-1]
    s = torch.randint(q, (f, n, length), generator=generator)
    # Row of coupling[f, i, d, :, b] in a (F * D * q, q) table: (f * D + d) * q + b.
    base = (torch.arange(f).view(f, 1, 1) * degree + torch.arange(degree).view(1, 1, degree)) * q
    for _ in range(sweeps):
        for i in range(length):
            neighbours = s.gather(2, nbr[:, i].unsqueeze(1).expand(f, n, degree))  # (F, n, D)
            table = coupling[:, i].transpose(2, 3).reshape(f * degree * q, q)  # rows (f, d, b)
            field = table[base + neighbours].sum(2) + h[:, i].unsqueeze(1)  # (F, n, q)
            gumbel = -torch.log(-torch.log(torch.rand(f, n, q, generator=generator)
                                           .clamp_min(1e-12)))
            s[:, :, i] = (field + gumbel).argmax(-1)
    return s


def make_families(chains: list, *, per_chain: int, length: int, sequences: int, q: int = 20,
                  sweeps: int = 40, field_std: float = 1.0, coupling_std: float = 0.5,
                  seed: int = 0, chunk: int = 64) -> Families:
    """``per_chain`` families from each chain of ``chains`` (``proteins`` Chain tuples): random
    windows of ``length`` residues, each with its own random Potts model. Deterministic in
    ``seed`` and the list of chains (a chain's windows depend on its id alone; its couplings
    and sequences, drawn ``chunk`` families at a time, also on its place in the list)."""
    windows: list[tuple[str, torch.Tensor, int]] = []
    for chain in chains:
        g = torch.Generator().manual_seed(seed * 100_003 + zlib.crc32(chain.id.encode()))
        if len(chain.ca) < length:
            continue
        for _ in range(per_chain):
            start = int(torch.randint(len(chain.ca) - length + 1, (1,), generator=g))
            windows.append((chain.id, chain.ca[start:start + length].float(),
                            int(torch.randint(2**31 - 1, (1,), generator=g))))
    tokens, distances = [], []
    for at in range(0, len(windows), chunk):
        part = windows[at:at + chunk]
        ca = torch.stack([w[1] for w in part])  # (F, L, 3)
        g = torch.Generator().manual_seed(part[0][2])
        h, nbr, coupling = random_potts(torch.stack([contact_map(c) for c in ca]), q,
                                        field_std, coupling_std, g)
        tokens.append(gibbs_sample(h, nbr, coupling, sequences, sweeps, g))
        distances.append(torch.cdist(ca, ca))
    if not windows:
        raise ValueError(f"no chain has {length} residues")
    return Families(torch.cat(tokens), torch.cat(distances), [w[0] for w in windows])


def split_chains(chains: list, val: int, test: int, seed: int = 0) -> dict[str, list]:
    """Chains split by a hash of their id (a fold is never in two splits): ``test`` chains,
    ``val`` chains, and the rest for training."""
    ranked = sorted(chains, key=lambda c: zlib.crc32(f"{seed}:{c.id}".encode()))
    if len(ranked) < val + test + 1:
        raise ValueError(f"{len(ranked)} chains cannot give {val} validation, {test} test and "
                         "at least one training chain")
    return {"test": ranked[:test], "val": ranked[test:test + val],
            "train": ranked[test + val:]}
