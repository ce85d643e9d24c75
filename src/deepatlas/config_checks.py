"""The range checks of a run's config that no type can express, each with the fix in its
message; :func:`deepatlas.config.load_recipe` and ``resume_config`` call :func:`validate`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepatlas.errors import UserError, unknown_name

if TYPE_CHECKING:
    from deepatlas.config import RunConfig


def validate(config: RunConfig) -> None:
    """Range checks that no type can express, with the fix in the message."""
    checks = [
        (config.optim.lr > 0, f"optim.lr must be > 0, got {config.optim.lr}"),
        (config.optim.weight_decay >= 0, "optim.weight_decay must be >= 0"),
        (0 <= config.optim.momentum < 1, "optim.momentum must be in [0, 1)"),
        (0 <= config.optim.beta1 < 1 and 0 <= config.optim.beta2 < 1,
         f"optim.beta1 and optim.beta2 must be in [0, 1), got {config.optim.beta1} and "
         f"{config.optim.beta2}"),
        (0 <= config.seed < 2**32, f"seed must be in [0, 2^32), got {config.seed}"),
        (config.train.epochs >= 1, f"train.epochs must be >= 1, got {config.train.epochs}"),
        (config.train.batch_size >= 1,
         f"train.batch_size must be >= 1, got {config.train.batch_size}"),
        (config.train.eval_batch_size >= 1, "train.eval_batch_size must be >= 1"),
        (config.train.limit_train_batches >= 0,
         "train.limit_train_batches must be >= 0 (0 = every batch)"),
        (config.train.limit_eval_examples >= 0,
         "train.limit_eval_examples must be >= 0 (0 = every held-out example)"),
        (config.train.clip_grad_norm >= 0, "train.clip_grad_norm must be >= 0 (0 = off)"),
        (0 <= config.train.ema_decay < 1, "train.ema_decay must be in [0, 1) (0 = off)"),
        (config.train.ema_warmup_steps >= 0,
         "train.ema_warmup_steps must be >= 0 (0 = a fixed decay)"),
        (config.train.eval_every >= 0, "train.eval_every must be >= 0 (0 = after the last "
         "epoch only)"),
        (config.train.early_stopping_patience >= 0, "train.early_stopping_patience must be >= 0"),
        (config.train.checkpoint_every_epochs >= 1, "train.checkpoint_every_epochs must be >= 1"),
        (config.train.checkpoint_every_steps >= 0,
         "train.checkpoint_every_steps must be >= 0 (0 = at epoch ends only)"),
        (0 <= config.regularize.label_smoothing < 1,
         f"regularize.label_smoothing must be in [0, 1), got {config.regularize.label_smoothing}"),
        (config.regularize.mixup_alpha >= 0, "regularize.mixup_alpha must be >= 0 (0 = off)"),
        (0 <= config.distill.alpha <= 1, f"distill.alpha must be in [0, 1], got "
         f"{config.distill.alpha}"),
        (config.distill.temperature > 0, "distill.temperature must be > 0"),
        (config.gan.critic_steps >= 1, "gan.critic_steps must be >= 1"),
        (0 <= config.gan.fade_fraction <= 1, "gan.fade_fraction must be in [0, 1]"),
        (config.gan.image_size in (28, 32), "gan.image_size must be 28 or 32"),
        (config.gan.fd_samples >= 2, "gan.fd_samples must be >= 2"),
        (config.upscale.patch >= 8 and config.upscale.patches >= 1
         and config.upscale.photo_side >= config.upscale.patch,
         "upscale.patch must be >= 8 px, upscale.patches >= 1, and upscale.photo_side >= "
         "upscale.patch"),
        (config.upscale.eval_images >= 0, "upscale.eval_images must be >= 0 (0 = all)"),
        (config.fairness.alpha >= 0, "fairness.alpha must be >= 0 (0 = projection only)"),
        (config.fairness.adversary_hidden >= 0,
         "fairness.adversary_hidden must be >= 0 (0 = a logistic-regression adversary)"),
        (config.simclr.temperature > 0, "simclr.temperature must be > 0"),
        (0 < config.simclr.min_scale <= 1, "simclr.min_scale must be in (0, 1]"),
        (config.simclr.knn_k >= 1, "simclr.knn_k must be >= 1"),
        (min(config.contacts.families_per_chain, config.contacts.eval_families_per_chain,
             config.contacts.sweeps) >= 1 and config.contacts.sequences >= 2,
         "contacts.families_per_chain, eval_families_per_chain and sweeps must be >= 1, "
         "contacts.sequences >= 2"),
        (config.contacts.length >= 32, "contacts.length must be >= 32 residues (the "
         "long-range pairs of the metric are 24 apart)"),
        (config.contacts.coupling_std > 0, "contacts.coupling_std must be > 0"),
        (config.clip.keywords >= 0, "clip.keywords must be >= 0 (0: titles only)"),
        (config.detect.topk >= 1, f"detect.topk must be >= 1, got {config.detect.topk}"),
        (config.speech.guided_attention >= 0 and config.speech.guide_width > 0,
         "speech.guided_attention must be >= 0 (0: off) and speech.guide_width > 0"),
        (config.speech.max_seconds > 0, "speech.max_seconds must be > 0"),
        (min(config.speech.eval_sentences, config.speech.wer_sentences,
             config.speech.griffin_lim_iterations) >= 0,
         "speech.eval_sentences, wer_sentences and griffin_lim_iterations must be >= 0"),
        (config.upscale.gan_weight == 0 or config.upscale.patch >= 16,
         f"upscale.patch={config.upscale.patch} is too small for the discriminator, which "
         "halves it four times: use >= 16 with upscale.gan_weight > 0"),
        (min(config.upscale.l1_weight, config.upscale.perceptual_weight,
             config.upscale.gan_weight) >= 0
         and config.upscale.l1_weight + config.upscale.perceptual_weight > 0,
         "upscale.l1_weight, perceptual_weight and gan_weight must be >= 0, and l1 or "
         "perceptual > 0 (the GAN term alone ignores the image's content)"),
        (not config.data.augment.startswith(("copy-paste", "mosaic"))
         or config.task in ("segment", "detect"),
         f"data.augment={config.data.augment} draws new scenes every epoch: it is for tasks "
         "segment and detect"),
        (not (config.data.augment == "mosaic-flip" and config.data.name == "digit-scenes"),
         "data.augment=mosaic-flip mirrors scenes, and a mirrored digit is another symbol or "
         "none: use data.augment=mosaic on digit-scenes"),
        (0 <= config.data.val_fraction < 1, "data.val_fraction must be in [0, 1)"),
        (config.data.train_examples >= 0, "data.train_examples must be >= 0 (0 = all)"),
        (config.data.num_workers >= 0, "data.num_workers must be >= 0"),
        (257 <= config.data.vocab_size <= 1_000_000,
         f"data.vocab_size must be in [257, 1000000] (256 bytes, then merges), got "
         f"{config.data.vocab_size}"),
        ((config.data.train_size_start > 0) == (config.data.train_size_end > 0)
         and config.data.train_size_start <= config.data.train_size_end,
         "progressive resizing needs 0 < data.train_size_start <= data.train_size_end "
         f"(got {config.data.train_size_start} and {config.data.train_size_end}); "
         "set both to 0 to turn it off"),
        (config.schedule.warmup_epochs >= 0, "schedule.warmup_epochs must be >= 0"),
        (config.train.monitor not in ("val_acc", "val_loss") or config.data.val_fraction > 0,
         f"train.monitor={config.train.monitor} needs a validation split: "
         "add --set data.val_fraction=0.1"),
    ]
    from deepatlas.data import list_sources
    from deepatlas.data.graphs import GRAPH_SOURCES
    from deepatlas.data.scenes import SCENE_SETS
    from deepatlas.data.numbers import SEQ2SEQ_SOURCES
    from deepatlas.models import list_models, model_kind

    sources, wanted = {"classify-images": (list_sources(), "image"),
                       "classify-nodes": (sorted(GRAPH_SOURCES), "graph"),
                       "seq2seq": (sorted(SEQ2SEQ_SOURCES), "seq2seq"),
                       "gan": (list_sources(), "gan"),
                       "language-model": (["austen"], "language"),
                       "translation": (["bible-en-es"], "seq2seq"),
                       "masked-lm": (["austen+rt-snippets"], "text"),
                       "classify-text": (["rt-snippets"], "text"),
                       "segment": (sorted(SCENE_SETS), "dense"),
                       "detect": ([*sorted(SCENE_SETS), "yolo-folder", "coco-json"], "detect"),
                       "upscale": (["photos"], "upscale"),
                       "debias": (["adult"], "image"),
                       "simclr": (list_sources(), "embedding"),
                       "predict-contacts": (["potts-proteins"], "msa"),
                       "clip": (["clipart"], "clip"),
                       "speak": (["speech"], "speech")}[config.task]
    if config.data.name not in sources:
        raise unknown_name(f"data set (data.name) for task {config.task}", config.data.name,
                           sources)
    kind = model_kind(config.model["name"])
    if kind != wanted:
        fitting = [m for m in list_models() if model_kind(m) == wanted]
        raise UserError(f"model {config.model['name']!r} is a {kind} model and does not fit "
                        f"task={config.task}; its models: {', '.join(fitting)}")
    if config.task == "debias" and config.model["name"] != "mlp":
        raise UserError(f"task debias reads a table of features: model.name must be mlp, got "
                        f"{config.model['name']!r}")
    if config.task == "gan" and model_kind(config.gan.discriminator) != "gan":
        raise UserError(f"gan.discriminator {config.gan.discriminator!r} is not a GAN model")
    if config.task == "upscale" and model_kind(config.upscale.discriminator) != "upscale-critic":
        raise UserError(f"upscale.discriminator {config.upscale.discriminator!r} is not an "
                        "upscale-critic model (esrgan-discriminator)")
    from deepatlas.models.registry import check_model_options

    check_model_options(config.model["name"], config.model)
    for ok, message in checks:
        if not ok:
            raise UserError(message)
