"""Contrastive image-text pre-training (MAP 6.3, CLIP; Radford et al. 2021): ``task = "clip"``.

Each batch of B drawings and their captions (data/image_text.py) gives a (B, B) similarity
matrix; the symmetric InfoNCE loss (:func:`deepatlas.losses.clip_loss`) makes the diagonal
win its row and its column. The category labels are used only to evaluate:

- **retrieval**: image -> text and text -> image recall@1/5/10 over the held-out pairs, by
  torchmetrics' ``RetrievalRecall`` (each query's one relevant document is its own pair);
  ``val_recall_mean``, the mean of the six, picks best.pt;
- **zero-shot classification**: each category's text embedding from prompts alone
  (``clip.prompts``: the bare name "frog" by default, or five sentences such as "a clip-art
  picture of a {}."), the image's class the nearest; reported per template (mean over
  templates) and with CLIP's prompt ensemble (the normalised mean of the templates'
  embeddings, renormalised);
- **linear probe**: scikit-learn's logistic regression (C = 1, standardised) on the frozen
  f_image(x) of the training drawings, tested on the test drawings: the supervised reference;
- both classifications as accuracy and as balanced accuracy (mean per-category recall), since
  the categories are far from even: always guessing the largest scores ``test_majority_acc``
  on the first and ``test_chance_balanced_acc`` (1 / categories) on the second.

Under torchrun the embeddings of every process are gathered, as in the paper and open_clip,
so each image is told apart from all the global batch's captions, not only its process's
B / world; the gradients flow back through the gather (open_clip's ``gather_with_grad`` and
``local_loss``), which gives the gradient of the whole batch's loss. The weights then equal
one process's where nothing else differs by process: not with the ResNet's BatchNorm (each
process's own statistics) or with the augmentation and caption draws (seeded by rank).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepatlas.data.image_text import (Pairs, caption_tokens, category_name, draw_variants,
                                       keyword_slots, load_pairs, train_caption_tokenizer)
from deepatlas.data.loaders import TensorBatches
from deepatlas.errors import UserError
from deepatlas.losses import clip_loss
from deepatlas.models import create_model
from deepatlas.train import Context, StepOutput, Task
from deepatlas.train.distributed import all_gather_with_grad

# The zero-shot prompt sets (clip.prompts). "phrased" is CLIP's way, sentences around the
# name; "name" won on validation here (benchmarks/clip_templates.py, README), since the text
# encoder read bare keywords in training and never these sentences.
PROMPT_SETS = {"name": ("{}",),
               "phrased": ("a clip-art picture of a {}.", "a drawing of {}.",
                           "an illustration of {}.", "clip art of {}.", "{}.")}
RECALL_AT = (1, 5, 10)
AUGMENTATIONS = ("none", "flip", "crop", "crop-flip")
KEYWORD_DRAWS = ("per-drawing", "per-step")
_PAIRS: dict[tuple, tuple[dict[str, Pairs], list[str]]] = {}  # the lab's seeds share one load


def retrieval_recall(similarity: torch.Tensor, ks: tuple[int, ...] = RECALL_AT
                     ) -> dict[int, float]:
    """Recall@k of queries (rows) against documents (columns), where row i's one relevant
    document is column i, by torchmetrics' ``RetrievalRecall``."""
    from torchmetrics.retrieval import RetrievalRecall

    n_queries, n_docs = similarity.shape
    indexes = torch.arange(n_queries).repeat_interleave(n_docs)
    target = torch.eye(n_queries, n_docs, dtype=torch.bool).flatten()
    scores = similarity.float().flatten().cpu()
    return {k: float(RetrievalRecall(top_k=k)(scores, target, indexes=indexes)) for k in ks}


def accuracies(labels: torch.Tensor, predicted: torch.Tensor) -> dict[str, float]:
    """Accuracy, and balanced accuracy (the mean of the per-class recalls, scikit-learn's):
    the categories are far from even, so "always the largest" scores 26% on the first and
    1 / classes on the second."""
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():  # a predicted class absent from the labels is no error
        warnings.simplefilter("ignore", UserWarning)
        balanced = balanced_accuracy_score(labels.numpy(), predicted.numpy())
    return {"acc": predicted.eq(labels).float().mean().item(), "balanced_acc": float(balanced)}


@torch.no_grad()
def embed(model: nn.Module, method: str, data: torch.Tensor, batch: int,
          device: torch.device, prepare=None) -> torch.Tensor:
    """``model.<method>`` of ``data`` in batches: (N, ...) on the CPU, float32."""
    model.eval()
    out = []
    for at in range(0, len(data), batch):
        x = data[at:at + batch].to(device)
        out.append(getattr(model, method)(prepare(x) if prepare else x).float().cpu())
    return torch.cat(out)


class ContrastiveImageText(Task):
    name = "clip"
    uses = {"data.image_size", "data.vocab_size", "data.augment", "train.eval_batch_size",
            "train.channels_last", "clip.*"}
    monitor = ("val_recall_mean", "max")
    primary = "test_zero_shot_acc"
    image_task = True

    def setup(self, ctx: Context) -> None:
        from deepatlas.data.packages import set_folder

        cfg, self.ctx = self.config, ctx
        if cfg.data.augment not in AUGMENTATIONS:
            raise UserError(f"task clip takes data.augment in {', '.join(AUGMENTATIONS)}, "
                            f"not {cfg.data.augment!r}")
        if cfg.clip.keyword_draw not in KEYWORD_DRAWS:
            raise UserError(f"clip.keyword_draw must be one of {', '.join(KEYWORD_DRAWS)}, "
                            f"not {cfg.clip.keyword_draw!r}")
        if cfg.clip.prompts not in PROMPT_SETS:
            raise UserError(f"clip.prompts must be one of {', '.join(PROMPT_SETS)}, "
                            f"not {cfg.clip.prompts!r}")
        self.templates = PROMPT_SETS[cfg.clip.prompts]
        if cfg.clip.keyword_draw == "per-step" and not cfg.clip.variants:
            raise UserError("clip.keyword_draw=per-step draws one of the caption variants; "
                            "it needs clip.variants=true")
        folder = set_folder(cfg.data.dir, "clipart", cfg.data.download)
        key = (str(folder), cfg.data.image_size, cfg.clip.keywords)
        if key not in _PAIRS:
            _PAIRS[key] = load_pairs(folder, cfg.data.image_size, cfg.clip.keywords)
        self.pairs, self.categories = _PAIRS[key]
        train = self.pairs["train"]
        if min(len(p) for p in self.pairs.values()) == 0:
            raise UserError(f"{folder} has too few captioned drawings to split "
                            f"({len(train)} train); run deepatlas data get clipart again")
        self.tokenizer = train_caption_tokenizer(train.captions, cfg.data.vocab_size)
        options = {k: v for k, v in cfg.model.items() if k != "name"}
        model = create_model(cfg.model["name"], in_channels=3, image_size=cfg.data.image_size,
                             num_classes=self.tokenizer.vocab_size, **options)
        self.context = model.context
        self.tokens = {s: caption_tokens(self.tokenizer, p.captions, self.context)
                       for s, p in self.pairs.items()}
        self._mean = train.images.mean((0, 2, 3)).view(1, -1, 1, 1).to(ctx.device)
        self._std = train.images.std((0, 2, 3)).view(1, -1, 1, 1).to(ctx.device)
        self.mean, self.std = self._mean.flatten().tolist(), self._std.flatten().tolist()
        self.models = {"model": model.to(ctx.device, memory_format=ctx.memory_format)}
        per_rank = cfg.train.batch_size // ctx.dist.world_size
        texts = self.tokens["train"]  # (N, T); with the variants (N, 4, T) or (N, 3 + K, T)
        counts = ()  # per step: how many keyword slots of each drawing are its own
        if cfg.clip.variants:
            columns = [list(v) for v in zip(*train.variants)]
            if cfg.clip.keyword_draw == "per-step":  # the fixed keyword -> K slots to draw from
                slots, keyword_count = keyword_slots(train.keywords, train.captions,
                                                     max(cfg.clip.keywords, 1))
                columns, counts = columns[:3] + [list(c) for c in zip(*slots)], (keyword_count,)
            texts = torch.stack([caption_tokens(self.tokenizer, column, self.context)
                                 for column in columns], dim=1)
        self.train_loader = TensorBatches(train.images, texts, *counts,
                                          batch_size=per_rank, seed=cfg.seed, device=ctx.device,
                                          rank=ctx.dist.rank, world_size=ctx.dist.world_size)
        if len(self.train_loader) == 0:
            raise UserError(f"train.batch_size={cfg.train.batch_size} is larger than the "
                            f"{len(train)} training pairs; lower it")

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self._mean.to(images.device)) / self._std.to(images.device)

    def training_step(self, batch: Any, group: str) -> StepOutput:
        from deepatlas.data.augment import augment_batch

        images, tokens, *counts = batch  # (B, 3, S, S) in [0, 1], (B, T) or (B, variants, T)
        # Seeded by the step, so a resumed run draws what an unbroken one would.
        g = torch.Generator(images.device).manual_seed(
            self.config.seed * 1_000_003 + self.step * 101 + self.ctx.dist.rank)
        if tokens.dim() == 3:  # one variant of each drawing's text
            pick = draw_variants(len(tokens), counts[0] if counts else None, g)  # (B,)
            tokens = tokens[torch.arange(len(tokens), device=tokens.device), pick]
        x = augment_batch(self.normalize(images), self.config.data.augment, g)
        x = x.contiguous(memory_format=self.ctx.memory_format)
        env = self.ctx.dist
        with self.ctx.autocast():
            image, text, scale = self.train_models["model"](x, tokens, embeddings=True)
            # every process's pairs are negatives for every other's (W = 1: these B)
            all_image = all_gather_with_grad(image, env)  # (W·B, E)
            all_text = all_gather_with_grad(text, env)  # (W·B, E)
            logits = scale * image @ all_text.T  # (B, W·B): this process's images
            per_text = scale * text @ all_image.T if env.enabled else None  # W = 1: logits.T
        target = torch.arange(len(image), device=image.device) + env.rank * len(image)
        loss = clip_loss(logits, per_text, target)
        with torch.no_grad():
            acc = (logits.argmax(1) == target).float().mean()  # image -> text top-1, W·B texts
            tau = 1 / self.models["model"].scale()
        return StepOutput(loss, {"loss": loss.detach(), "batch_acc": acc, "temperature": tau},
                          n=len(images))

    def class_embeddings(self, model: nn.Module) -> torch.Tensor:
        """(templates, classes, E): each template's unit text embedding of each category."""
        prompts = [t.format(category_name(c)) for t in self.templates for c in self.categories]
        tokens = caption_tokens(self.tokenizer, prompts, self.context)
        text = embed(model, "encode_text", tokens, 256, self.ctx.device)
        return text.view(len(self.templates), len(self.categories), -1)

    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        from deepatlas.tasks.simclr import fit_probe

        model, batch = models["model"], self.config.train.eval_batch_size
        classes = self.class_embeddings(model)  # (P, C, E)
        ensemble = nn.functional.normalize(classes.mean(0), dim=-1)  # (C, E)
        out: dict[str, float] = {}
        for split in ("val", "test"):
            pairs = self.pairs[split]
            images = embed(model, "encode_image", pairs.images, batch, self.ctx.device,
                           self.normalize)  # (N, E)
            texts = embed(model, "encode_text", self.tokens[split], batch, self.ctx.device)
            similarity = images @ texts.T  # (N images, N captions)
            recalls = {f"{split}_image_to_text_r{k}": v
                       for k, v in retrieval_recall(similarity).items()}
            recalls.update({f"{split}_text_to_image_r{k}": v
                            for k, v in retrieval_recall(similarity.T).items()})
            out.update(recalls)
            out[f"{split}_recall_mean"] = sum(recalls.values()) / len(recalls)
            per_template = [(images @ c.T).argmax(1).eq(pairs.labels).float().mean().item()
                            for c in classes]
            out[f"{split}_zero_shot_acc_per_template"] = sum(per_template) / len(per_template)
            out.update({f"{split}_zero_shot_{k}": v for k, v in accuracies(
                pairs.labels, (images @ ensemble.T).argmax(1)).items()})
        features = {s: embed(model, "features", self.pairs[s].images, batch, self.ctx.device,
                             self.normalize).numpy() for s in ("train", "test")}
        probe = fit_probe(features["train"], self.pairs["train"].labels.numpy())
        test_labels = self.pairs["test"].labels
        out.update({f"test_probe_{k}": v for k, v in accuracies(
            test_labels, torch.from_numpy(probe.predict(features["test"]))).items()})
        out["test_majority_acc"] = test_labels.bincount().max().item() / len(test_labels)
        out["test_chance_balanced_acc"] = 1 / len(test_labels.unique())
        return out

    def describe_data(self) -> dict[str, Any]:
        return {"name": "clipart", "categories": self.categories, "image_size":
                self.config.data.image_size, "mean": self.mean, "std": self.std,
                "tokenizer": self.tokenizer.to_json(), "context": self.context,
                "templates": list(self.templates)}

    def data_summary(self) -> dict[str, Any]:
        return {"name": "clipart", "source": "Open Clip Art Library drawings (Debian "
                "openclipart-svg) with their titles and keywords",
                **{s: len(p) for s, p in self.pairs.items()},
                "categories": len(self.categories)}
