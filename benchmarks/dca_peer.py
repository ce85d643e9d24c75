"""deepatlas's mean-field DCA (MAP 6.3, the contacts lab's baseline) against pydca's.

    pip install --no-deps pydca==1.23   # its 2019 pins (numpy<=1.15) predate Python 3.11;
                                        # mean-field DCA needs only numpy, numba, biopython
    python benchmarks/dca_peer.py [--families N] [--out results/benchmarks]

The peer is what a user would pick instead: pydca's ``MeanFieldDCA`` (Zerihun et al. 2020),
run on the very alignments the ``protein-structure`` lab scores (the ``contacts-evoformer``
recipe's test families: Potts models on real folds from ``proteins``, 64 sequences x 64
residues), with the same pseudocount 0.5 and no sequence reweighting (``seqid=1``; the
sequences are independent draws). pydca reads protein alignments over 21 states, the gap last
and here never seen, so deepatlas is run over the same 21 states for the equality of the
couplings; the lab itself runs over the 20 amino acids.

Measured: the largest difference between the two J = -C⁻¹ (relative to the largest coupling),
the top-L/5 long-range (|i - j| >= 24) contact precision of each APC-corrected score, and the
seconds each takes from an alignment to its scores over 21 states.
The two Frobenius scores differ by convention only: pydca re-gauges the (q-1) x (q-1) block
without the gauge state, deepatlas the q x q block with it (as Ekeberg et al. 2013 do).

Needs the proteins set (``deepatlas data get proteins``). Run by hand, never by the tests;
the result goes to ``results/benchmarks/dca-peer-<host>.json``.
"""

from __future__ import annotations

import argparse
import time
from importlib.metadata import version

import numpy as np
import torch

from deepatlas.config import load_recipe
from deepatlas.data.packages import set_folder
from deepatlas.data.potts import CONTACT_A
from deepatlas.models.coevolution import apc_scores, mean_field_couplings, top_precision
from deepatlas.tasks.contacts import ALPHABET, family_splits
from deepatlas.train.runinfo import write_result

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"  # pydca's states 1..20, in its order; 21 is the gap
PSEUDOCOUNT = 0.5


def pydca_run(tokens: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """pydca's couplings (L(q-1), L(q-1)) and its APC-corrected Frobenius scores (L, L)."""
    from Bio.Align import MultipleSeqAlignment
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord
    from pydca.meanfield_dca.meanfield_dca import MeanFieldDCA

    records = [SeqRecord(Seq("".join(AMINO_ACIDS[a] for a in row)), id=str(n))
               for n, row in enumerate(tokens.tolist())]
    dca = MeanFieldDCA(MultipleSeqAlignment(records), "protein", pseudocount=PSEUDOCOUNT,
                       seqid=1.0)
    couplings = dca.compute_couplings(dca.construct_corr_mat(
        dca.get_reg_single_site_freqs(), dca.get_reg_pair_site_freqs()))
    length = tokens.shape[1]
    scores = np.zeros((length, length))
    for (i, j), score in dca.compute_sorted_FN_APC():
        scores[i, j] = scores[j, i] = score
    return couplings, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", type=int, default=0,
                        help="score the first N test families (default: all 40)")
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()

    config = load_recipe("contacts-evoformer", ["data.download=false"])
    families = family_splits(set_folder("", "proteins", download=False), config)["test"]
    rows, worst, seconds = [], 0.0, {"deepatlas": 0.0, "pydca": 0.0}
    for tokens, distances in list(zip(families.tokens, families.distances))[:args.families or None]:
        contacts = distances < CONTACT_A
        length, q = tokens.shape[1], ALPHABET + 1
        start = time.perf_counter()  # like for like: both compute couplings, then scores
        ours = mean_field_couplings(tokens, q, PSEUDOCOUNT)  # (L, L, q, q), gauge state last
        ours_21 = apc_scores(tokens, q, "dca")
        seconds["deepatlas"] += time.perf_counter() - start
        ours_scores = apc_scores(tokens, ALPHABET, "dca")  # what the lab scores
        start = time.perf_counter()
        theirs, theirs_scores = pydca_run(tokens)
        seconds["pydca"] += time.perf_counter() - start
        theirs = torch.from_numpy(theirs).reshape(length, q - 1, length, q - 1)
        ours = ours[:, :, :q - 1, :q - 1].permute(0, 2, 1, 3)  # pydca's (i, a, j, b) layout
        off = ~torch.eye(length, dtype=torch.bool)[:, None, :, None]  # J_ii is not a coupling
        gap = ((ours - theirs).abs() * off).max() / (theirs.abs() * off).max()
        worst = max(worst, float(gap))
        rows.append({"deepatlas": top_precision(ours_scores, contacts),
                     "deepatlas_21_states": top_precision(ours_21, contacts),
                     "pydca": top_precision(torch.from_numpy(theirs_scores), contacts)})
        print(f"family {len(rows)}: {rows[-1]}, couplings differ by {float(gap):.1e}",
              flush=True)
    means = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    result = {"families": len(rows), "pseudocount": PSEUDOCOUNT,
              "alignment": list(families.tokens.shape[1:]),
              "max_relative_coupling_difference": worst, "top_l5_precision": means,
              "per_family": rows, "seconds": seconds, "pydca": version("pydca")}
    path = write_result(args.out, "dca-peer", result)
    print(f"{means}; couplings agree to {worst:.1e}; wrote {path}")


if __name__ == "__main__":
    main()
