"""Contact prediction from alignments (MAP 6.3, AlphaFold 2): ``task = "predict-contacts"``.

Data ``potts-proteins`` (data/potts.py): windows of real chains from ``proteins``, each with an
alignment drawn from a Potts model whose couplings sit on that window's contacts. Chains are
split by a hash of their id (35 train, 5 validation, 10 test), so a test fold is never seen in
training. The model (models/alphafold.py, an Evoformer) predicts each pair's CA-CA distance
bin; the loss is the distogram cross-entropy of AlphaFold 2 (section 1.9.8):

    L = mean over pairs i != j of -log p_ij(bin(d_ij)),   P(contact_ij) = Σ_{b: d < 8 A} p_ij(b)

The metric is top-L/5 long-range precision (|i - j| >= 24, CASP's): ``val_precision`` picks
best.pt. The baselines, on the same test alignments, are the classic covariation scores
(models/coevolution.py): mean-field DCA and mutual information, both APC-corrected; the
summary reports them as ``test_dca_precision`` and ``test_mi_precision``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.config import RunConfig
from deepatlas.data import proteins
from deepatlas.data.loaders import TensorBatches
from deepatlas.data.potts import (BIN_EDGES, CONTACT_A, CONTACT_BINS, Families, distance_bins,
                                  make_families, split_chains)
from deepatlas.models import create_model
from deepatlas.models.coevolution import apc_scores, top_precision
from deepatlas.train import Context, StepOutput, Task

ALPHABET = 20  # the 20 amino acids; the Potts families have no gaps
VAL_CHAINS, TEST_CHAINS = 5, 10
_FAMILIES: dict[tuple, Families] = {}  # generated once per process: the lab's seeds share them


def family_splits(folder: Path, cfg: RunConfig) -> dict[str, Families]:
    """The train, val and test families of a run's ``contacts`` settings (memoised)."""
    c = cfg.contacts
    key = (str(folder), c.length, c.sequences, c.families_per_chain,
           c.eval_families_per_chain, c.coupling_std, c.sweeps)
    if key not in _FAMILIES:
        chains = proteins.load(folder)
        for split, group in split_chains(chains, VAL_CHAINS, TEST_CHAINS).items():
            per_chain = c.families_per_chain if split == "train" else c.eval_families_per_chain
            _FAMILIES[(*key, split)] = make_families(
                group, per_chain=per_chain, length=c.length, sequences=c.sequences, q=ALPHABET,
                sweeps=c.sweeps, coupling_std=c.coupling_std,
                seed={"train": 0, "val": 1, "test": 2}[split])
        _FAMILIES[key] = _FAMILIES[(*key, "train")]
    return {split: _FAMILIES[(*key, split)] for split in ("train", "val", "test")}


def baseline_precisions(families: Families) -> dict[str, float]:
    """Mean top-L/5 long-range precision of APC-corrected mean-field DCA and MI, computed once
    per Families object (kept on it)."""
    if families.baselines is None:
        contacts = families.distances < CONTACT_A
        families.baselines = {method: sum(top_precision(apc_scores(t, ALPHABET, method), c)
                                          for t, c in zip(families.tokens, contacts))
                              / len(families) for method in ("dca", "mi")}
    return families.baselines


def contact_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """P(d_ij < 8 A) (B, L, L) from distogram logits (B, L, L, bins)."""
    return logits.float().softmax(-1)[..., :CONTACT_BINS].sum(-1)


class PredictContacts(Task):
    name = "predict-contacts"
    uses = {"contacts.*"}
    monitor = ("val_precision", "max")
    primary = "test_precision"

    def setup(self, ctx: Context) -> None:
        from deepatlas.data.packages import set_folder

        cfg = self.config
        self.ctx = ctx
        folder = set_folder(cfg.data.dir, "proteins", cfg.data.download)
        self.families = family_splits(folder, cfg)
        train = self.families["train"]
        options = {k: v for k, v in cfg.model.items() if k != "name"}
        self.models = {"model": create_model(cfg.model["name"], in_channels=ALPHABET,
                                             num_classes=len(BIN_EDGES) + 1, **options
                                             ).to(ctx.device)}
        per_rank = max(cfg.train.batch_size // ctx.dist.world_size, 1)
        self.train_loader = TensorBatches(train.tokens, distance_bins(train.distances),
                                          batch_size=per_rank, seed=cfg.seed, device=ctx.device,
                                          rank=ctx.dist.rank, world_size=ctx.dist.world_size)

    def training_step(self, batch: Any, group: str) -> StepOutput:
        tokens, bins = batch  # (B, S, L), (B, L, L)
        with self.ctx.autocast():
            logits = self.train_models["model"](tokens)  # (B, L, L, bins)
        pairs = ~torch.eye(tokens.shape[-1], dtype=torch.bool, device=tokens.device)
        loss = F.cross_entropy(logits[:, pairs].float().flatten(0, 1), bins[:, pairs].flatten())
        return StepOutput(loss, {"loss": loss.detach()}, n=len(tokens))

    @torch.no_grad()
    def predict(self, model: nn.Module, families: Families, batch: int = 4) -> torch.Tensor:
        """P(contact) (F, L, L) for every family."""
        model.eval()
        out = []
        for at in range(0, len(families), batch):
            tokens = families.tokens[at:at + batch].to(self.ctx.device)
            with self.ctx.autocast():
                out.append(contact_probabilities(model(tokens)).cpu())
        return torch.cat(out)

    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for split in ("val", "test"):
            families = self.families[split]
            contacts = families.distances < CONTACT_A
            scores = self.predict(models["model"], families)
            metrics[f"{split}_precision"] = sum(
                top_precision(s, c) for s, c in zip(scores, contacts)) / len(families)
            metrics[f"{split}_precision_top_l"] = sum(
                top_precision(s, c, fraction=1) for s, c in zip(scores, contacts)) / len(families)
        baselines = baseline_precisions(self.families["test"])
        metrics.update({f"test_{m}_precision": v for m, v in baselines.items()})
        return metrics

    def describe_data(self) -> dict[str, Any]:
        c = self.config.contacts
        return {"name": "potts-proteins", "alphabet": ALPHABET, "bin_edges": list(BIN_EDGES),
                "length": c.length, "sequences": c.sequences}

    def data_summary(self) -> dict[str, Any]:
        f = self.families
        return {"name": "potts-proteins",
                "source": "Potts alignments on the contacts of real chains (proteins: "
                          "MDAnalysisTests' DSSP set)",
                "train": len(f["train"]), "val": len(f["val"]), "test": len(f["test"]),
                "chains": {s: len(set(f[s].chain)) for s in f}}
