"""MAP 6.3, AlphaFold 2 at CPU scale: Potts families (data/potts.py), the covariation baselines
and the contact metric (models/coevolution.py) against scikit-learn and hand computations, the
Evoformer contact model, task predict-contacts end to end on tiny chains, and `superpose`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepatlas.data.potts import (contact_map, distance_bins, gibbs_sample, make_families,
                                  random_potts, split_chains)
from deepatlas.models import create_model
from deepatlas.models.alphafold import column_covariance
from deepatlas.models.coevolution import (apc, frequencies, mean_field_couplings,
                                          mean_field_dca, mutual_information, top_precision)


def test_contact_map_and_bins():
    ca = torch.tensor([[0.0, 0, 0], [3.8, 0, 0], [7.0, 0, 0], [20.0, 0, 0]])
    assert contact_map(ca).tolist() == [[False, True, True, False], [True, False, True, False],
                                        [True, True, False, False], [False] * 4]
    assert distance_bins(torch.tensor([3.9, 4.0, 7.99, 8.0, 25.0])).tolist() == [0, 1, 2, 3, 9]


def test_potts_couplings_are_symmetric_and_only_on_contacts():
    contacts = torch.zeros(1, 5, 5, dtype=torch.bool)
    for i, j in ((0, 3), (1, 2), (1, 4)):
        contacts[0, i, j] = contacts[0, j, i] = True
    h, nbr, coupling = random_potts(contacts, 3, 1.0, 1.0, torch.Generator().manual_seed(0))
    dense = torch.zeros(5, 5, 3, 3)
    for i in range(5):
        for d in range(nbr.shape[-1]):
            dense[i, nbr[0, i, d]] += coupling[0, i, d]
    assert torch.equal(dense != 0, contacts[0][..., None, None].expand(5, 5, 3, 3))
    assert torch.equal(dense, dense.permute(1, 0, 3, 2))  # J_ji(b, a) = J_ij(a, b)


def test_gibbs_without_couplings_samples_the_fields():
    """Independent sites: P(s_i = a) = softmax(h_i)(a), within 4 binomial standard errors."""
    g = torch.Generator().manual_seed(0)
    contacts = torch.zeros(1, 3, 3, dtype=torch.bool)
    h, nbr, coupling = random_potts(contacts, 4, 1.5, 1.0, g)
    s = gibbs_sample(h, nbr, coupling, 4000, 2, g)[0]  # (n, L)
    observed = torch.nn.functional.one_hot(s, 4).double().mean(0)  # (L, q)
    expected = h[0].double().softmax(-1)
    assert (observed - expected).abs().max() < 4 * math.sqrt(0.25 / 4000)


def test_gibbs_samples_the_potts_distribution_exactly_enumerated():
    """3 sites, 3 states, couplings on (0, 1) and (1, 2): the sampled pair marginals match
    P(s) ∝ exp(Σ h_i(s_i) + Σ J_ij(s_i, s_j)) summed over all 27 sequences (4 standard errors).
    A sampler that used J_ij(b, a) for J_ij(a, b) would fail: the couplings are asymmetric."""
    import itertools

    g = torch.Generator().manual_seed(5)
    contacts = torch.zeros(1, 3, 3, dtype=torch.bool)
    for i, j in ((0, 1), (1, 2)):
        contacts[0, i, j] = contacts[0, j, i] = True
    h, nbr, coupling = random_potts(contacts, 3, 0.5, 1.5, g)
    dense = torch.zeros(3, 3, 3, 3, dtype=torch.float64)
    for i in range(3):
        for d in range(nbr.shape[-1]):
            dense[i, nbr[0, i, d]] += coupling[0, i, d].double()
    states = list(itertools.product(range(3), repeat=3))
    energy = torch.tensor([sum(h[0, i, s[i]].item() for i in range(3))
                           + sum(dense[i, j, s[i], s[j]].item() for i, j in ((0, 1), (1, 2)))
                           for s in states], dtype=torch.float64)
    p = energy.softmax(0)
    exact = torch.zeros(3, 3, dtype=torch.float64)
    for s, ps in zip(states, p):
        exact[s[0], s[1]] += ps
    n = 20_000
    tokens = gibbs_sample(h, nbr, coupling, n, 40, g)[0]  # 40 sweeps: mixed between modes
    sampled = torch.zeros(3, 3, dtype=torch.float64)
    sampled.index_put_((tokens[:, 0], tokens[:, 1]), torch.ones(n, dtype=torch.float64),
                       accumulate=True)
    sampled /= n
    assert ((sampled - exact).abs() < 4 * (exact * (1 - exact) / n).sqrt() + 1e-3).all()


def test_a_strong_coupling_is_found_by_mi_and_dca():
    g = torch.Generator().manual_seed(1)
    contacts = torch.zeros(1, 8, 8, dtype=torch.bool)
    contacts[0, 1, 6] = contacts[0, 6, 1] = True
    h, nbr, coupling = random_potts(contacts, 4, 0.3, 2.0, g)
    tokens = gibbs_sample(h, nbr, coupling, 600, 10, g)[0]
    for scores in (mutual_information(tokens, 4), mean_field_dca(tokens, 4)):
        best = divmod(int(scores.triu(1).argmax()), 8)
        assert best == (1, 6)


def test_mutual_information_matches_scikit_learn():
    from sklearn.metrics import mutual_info_score

    tokens = torch.randint(5, (60, 4), generator=torch.Generator().manual_seed(2))
    ours = mutual_information(tokens, 5)
    for i in range(4):
        for j in range(4):
            want = 0.0 if i == j else mutual_info_score(tokens[:, i], tokens[:, j])
            assert ours[i, j].item() == pytest.approx(want, abs=1e-12)


def test_mean_field_couplings_are_minus_the_inverse_covariance_laid_out_by_site_pair():
    """J_ij(a, b) = -(C⁻¹)[(i, a), (j, b)], C built entry by entry over the first q - 1
    states (pydca's layout; benchmarks/dca_peer.py compares them with pydca's own);
    the gauge state's couplings are 0."""
    q, length = 3, 4
    tokens = torch.randint(q, (50, length), generator=torch.Generator().manual_seed(4))
    single, pair = frequencies(tokens, q, pseudocount=0.5)
    n = q - 1
    cov = torch.zeros(length * n, length * n, dtype=torch.float64)
    for i in range(length):
        for j in range(length):
            for a in range(n):
                for b in range(n):
                    cov[i * n + a, j * n + b] = pair[i, j, a, b] - single[i, a] * single[j, b]
    want = -torch.linalg.inv(cov)
    got = mean_field_couplings(tokens, q, pseudocount=0.5)
    assert got.shape == (length, length, q, q)
    assert torch.all(got[..., -1, :] == 0) and torch.all(got[..., :, -1] == 0)
    for i in range(length):
        for j in range(length):
            assert torch.allclose(got[i, j, :n, :n], want[i * n:(i + 1) * n, j * n:(j + 1) * n],
                                  atol=1e-10)


def test_frequencies_pseudocount_keeps_columns_consistent():
    tokens = torch.randint(3, (10, 4), generator=torch.Generator().manual_seed(3))
    single, pair = frequencies(tokens, 3, pseudocount=0.5)
    assert torch.allclose(pair.sum(-1), single[:, None].expand(4, 4, 3), atol=1e-12)  # Σ_b f_ij(a, b) = f_i(a)
    assert torch.allclose(single.sum(-1), torch.ones(4, dtype=torch.float64))


def test_apc_by_hand():
    s = torch.tensor([[0.0, 1, 2], [1, 0, 3], [2, 3, 0]])
    row = torch.tensor([1.5, 2.0, 2.5])  # means over j != i
    total = 2.0  # mean of the six off-diagonal entries
    want = s - row[:, None] * row[None, :] / total
    want.fill_diagonal_(0)
    assert torch.allclose(apc(s), want)


def test_top_precision_by_hand():
    scores = torch.zeros(30, 30)
    contacts = torch.zeros(30, 30, dtype=torch.bool)
    scores[0, 29], scores[1, 28], scores[2, 27] = 3.0, 2.0, 1.0  # the three best long pairs
    scores[0, 1] = 9.0  # short range: not counted
    contacts[0, 29] = contacts[2, 27] = True
    assert top_precision(scores, contacts, fraction=10) == 2 / 3  # L/10 = 3 pairs
    with pytest.raises(ValueError, match="24 apart"):
        top_precision(torch.zeros(20, 20), torch.zeros(20, 20, dtype=torch.bool))


def test_column_covariance_is_q_times_the_indicator_covariance():
    tokens = torch.randint(3, (1, 40, 4), generator=torch.Generator().manual_seed(4))
    ours = column_covariance(tokens, 3)[0].view(4, 4, 3, 3)
    onehot = np.eye(3)[tokens[0].numpy()].reshape(40, 12)  # (S, L * q)
    want = np.cov(onehot, rowvar=False, bias=True).reshape(4, 3, 4, 3).transpose(0, 2, 1, 3)
    assert np.allclose(ours.numpy(), 3 * want, atol=1e-6)


@pytest.mark.parametrize("covariance", [True, False])
def test_evoformer_model_symmetric_logits_and_gradients(covariance):
    torch.manual_seed(0)
    model = create_model("evoformer", in_channels=5, num_classes=4, blocks=1, width=8,
                         heads=2, head_width=4, covariance=covariance)
    with torch.no_grad():  # the paper's zero-initialised updates would hide every gradient
        for p in model.parameters():
            p.normal_(0, 0.2)
    logits = model(torch.randint(5, (2, 6, 10)))
    assert logits.shape == (2, 10, 10, 4) and torch.isfinite(logits).all()
    assert torch.allclose(logits, logits.transpose(1, 2), atol=1e-6)
    logits.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_families_are_deterministic_and_split_by_chain(tmp_path):
    from fakedata import make_proteins

    from deepatlas.data.proteins import load

    chains = load(make_proteins(tmp_path) / "proteins")
    splits = split_chains(chains, 2, 3)
    assert [len(splits[s]) for s in ("test", "val", "train")] == [3, 2, 13]
    assert not {c.id for c in splits["test"]} & {c.id for c in splits["train"]}
    a = make_families(chains[:2], per_chain=2, length=32, sequences=5, sweeps=1, seed=7)
    b = make_families(chains[:2], per_chain=2, length=32, sequences=5, sweeps=1, seed=7)
    assert torch.equal(a.tokens, b.tokens) and a.tokens.shape == (4, 5, 32)
    assert a.chain == [chains[0].id] * 2 + [chains[1].id] * 2
    with pytest.raises(ValueError, match="no chain has 99 residues"):
        make_families(chains[:1], per_chain=1, length=99, sequences=2)


def test_predict_contacts_trains_and_reports_its_baselines(tmp_path):
    from fakedata import make_proteins

    from deepatlas.config import load_recipe
    from deepatlas.tasks import fit

    config = load_recipe("contacts-evoformer", [
        f"data.dir={make_proteins(tmp_path / 'data')}", "train.epochs=1", "train.batch_size=2",
        "contacts.length=32", "contacts.sequences=8", "contacts.families_per_chain=2",
        "contacts.eval_families_per_chain=1", "contacts.sweeps=2", "model.width=8",
        "model.heads=2", "train.tensorboard=false"])
    summary = fit(config, tmp_path / "run", progress=False)
    assert summary["primary"] == "test_precision"
    for key in ("test_precision", "test_dca_precision", "test_mi_precision", "val_precision"):
        assert 0 <= summary[key] <= 1, key  # a NaN (or a missing metric) fails here
    # The baselines are the covariation scores of the very test families the run evaluated.
    from deepatlas.data.potts import CONTACT_A
    from deepatlas.models.coevolution import apc_scores
    from deepatlas.tasks.contacts import family_splits

    test = family_splits(tmp_path / "data" / "proteins", config)["test"]
    dca = [top_precision(apc_scores(t, 20, "dca"), d < CONTACT_A)
           for t, d in zip(test.tokens, test.distances)]
    assert summary["test_dca_precision"] == pytest.approx(sum(dca) / len(dca))
    assert summary["data"]["chains"] == {"train": 3, "val": 5, "test": 10}


def test_predict_contacts_without_proteins_names_the_command(cli, tmp_path):
    code, _, err = cli("train", "contacts-evoformer", "--out", tmp_path / "run", "--set",
                       f"data.dir={tmp_path}")
    assert code == 2
    assert "deepatlas data get proteins" in err and "Traceback" not in err


def _pdb_models(models: list[np.ndarray], chain: str = "A") -> str:
    """A PDB text with one MODEL per CA trace (N, 3), residues ALA 1..N of ``chain``."""
    atom = "ATOM  {:5d}  CA  ALA {}{:4d}    {:8.3f}{:8.3f}{:8.3f}  1.00  0.00           C\n"
    text = ""
    for k, xyz in enumerate(models, 1):
        text += f"MODEL     {k:4d}\n" + "".join(
            atom.format(i, chain, i, *p) for i, p in enumerate(xyz, 1)) + "ENDMDL\n"
    return text


def test_superpose_compares_nmr_models_like_biopython(cli, tmp_path):
    from Bio.SVDSuperimposer import SVDSuperimposer

    rng = np.random.default_rng(0)
    first = np.cumsum(rng.normal(size=(30, 3)) * 2.2, axis=0)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation *= np.sign(np.linalg.det(rotation))
    second = first @ rotation.T + 5.0 + rng.normal(size=(30, 3)) * 0.3
    second[3] += 8.0  # one residue far off: r.m.s.d.95 leaves it out, RMSD does not
    (tmp_path / "ens.pdb").write_text(_pdb_models([first, second]))
    code, out, err = cli("superpose", tmp_path / "ens.pdb", "--json")
    assert code == 0, err
    import json

    [row] = json.loads(out)
    sup = SVDSuperimposer()
    sup.set(np.round(first, 3), np.round(second, 3))  # the PDB columns keep 3 decimals
    sup.run()
    assert row["compared"] == "chain A, model 1 vs 2" and row["residues"] == 30
    assert row["rmsd"] == pytest.approx(sup.get_rms(), abs=1e-6)
    assert row["rmsd95"] < 0.6 < row["rmsd"] and 0 < row["lddt_ca"] < 1
