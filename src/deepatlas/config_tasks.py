"""The config sections of single tasks (``[gan]``, ``[upscale]``, ``[fairness]``, ``[simclr]``,
``[contacts]``, ``[clip]``, ``[speech]``, ``[detect]``): each names its task and MAP item.
``deepatlas.config`` assembles them into :class:`~deepatlas.config.RunConfig`; the engine's own
sections live there."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GanConfig:
    """task = "gan" (MAP 4.3): ``model.*`` is the generator, these keys the rest."""
    discriminator: str = "dcgan-discriminator"  # a registered model of kind "gan"
    discriminator_width: int = 64
    loss: str = "nonsaturating"  # nonsaturating | minimax | wgan-gp
    critic_steps: int = 1  # discriminator updates per generator update (WGAN-GP: 5)
    gp_lambda: float = 10.0  # weight of the gradient penalty (wgan-gp)
    drift: float = 0.0  # ProGAN's eps_drift * E[D(x)^2], keeps critic scores near 0
    fade_fraction: float = 0.5  # share of each new ProGAN stage spent fading it in
    image_size: int = 32  # generated size; real images are padded (28 -> 32) or resized
    fd_samples: int = 5000  # samples for the Frechet distance, per epoch
    classifier: str = "auto"  # the FD's ruler: auto = the bundled Fashion-MNIST classifier,
    # or a quick digits classifier trained in the run; else a run/checkpoint/.safetensors


@dataclass
class UpscaleConfig:
    """task = "upscale" (MAP 6.1, ESRGAN): ``model.*`` is the generator, these keys the rest."""
    photo_side: int = 512  # HR photographs are shrunk to this longest side (px) once
    patch: int = 64  # side (HR px) of the training crops; the LR input is patch / scale
    patches: int = 8000  # training crops in the fixed, seeded bank (an epoch is one pass)
    eval_images: int = 0  # > 0: score only this many validation and test photos (quick runs)
    l1_weight: float = 1.0  # eta * ||G(x) - y||_1: alone, the PSNR-oriented stage
    perceptual_weight: float = 0.0  # ESRGAN's GAN stage: 1 (random-weight VGG features)
    gan_weight: float = 0.0  # lambda * L_G^Ra; > 0 turns on the discriminator (stage 2: 0.005)
    discriminator: str = "esrgan-discriminator"  # a registered model of kind "upscale-critic"
    discriminator_width: int = 32


@dataclass
class FairnessConfig:
    """task = "debias" (MAP 7.3, adversarial debiasing): the adversary and its weight."""
    protected: str = "sex"  # the attribute the adversary predicts: sex or race
    constraint: str = "equalized-odds"  # the adversary sees (y_hat, y); or demographic-parity
    adversary: bool = True  # false: the plain predictor, the baseline
    alpha: float = 1.0  # weight of -grad L_A in the predictor's update (Zhang et al.'s alpha)
    adversary_hidden: int = 0  # 0: the paper's logistic-regression adversary; > 0: one ReLU layer


@dataclass
class SimCLRConfig:
    """task = "simclr" (MAP 7.4, self-supervised learning): the views and the evaluation."""
    temperature: float = 0.5  # tau of NT-Xent
    min_scale: float = 0.3  # smallest area fraction of a view's random crop
    knn_k: int = 20  # neighbours of the kNN evaluation


@dataclass
class ContactsConfig:
    """task = "predict-contacts" (MAP 6.3, AlphaFold 2): the Potts families (data/potts.py)."""
    length: int = 64  # residues per family: a window of a real chain
    sequences: int = 64  # sequences per alignment
    families_per_chain: int = 10  # training families drawn from each training chain
    eval_families_per_chain: int = 4  # validation and test families per held-out chain
    coupling_std: float = 0.6  # sigma_J of the couplings on contacts (fields: sigma_h = 1)
    sweeps: int = 20  # Gibbs sweeps per sequence


@dataclass
class ClipConfig:
    """task = "clip" (MAP 6.3, CLIP): the captions (the model's keys hold the temperature)."""
    keywords: int = 6  # a caption is the title and up to this many of its keywords
    variants: bool = True  # each step, each drawing's text is one of caption, title,
    # keywords, one keyword (data/image_text.py); false: always the caption
    keyword_draw: str = "per-drawing"  # the one keyword: fixed per drawing | per-step (drawn
    # afresh from the drawing's keywords at every step)
    prompts: str = "name"  # zero-shot prompts: name (the bare category name, the form of the
    # one-keyword variant) | phrased (five templates, "a clip-art picture of a {}.", ...)


@dataclass
class SpeechConfig:
    """task = "speak" (MAP 6.3, Tacotron 2): the symbols, the alignment's guide, the measures."""
    symbols: str = "phonemes"  # phonemes (espeak-ng's IPA, as spoken) | characters (the text)
    guided_attention: float = 1.0  # weight of Tachibana et al.'s diagonal guide; 0 = off
    guide_width: float = 0.2  # g of the guide: W_nt = 1 - exp(-(n/N - t/T)^2 / 2g^2)
    max_seconds: float = 8.0  # training sentences longer than this are left out (padding)
    eval_sentences: int = 48  # test sentences spoken free-running for MCD and attention
    wer_sentences: int = 16  # of those, read by the recogniser (4 s each here); 0 = none
    griffin_lim_iterations: int = 32


@dataclass
class DetectConfig:
    """task = "detect" (MAP 6.1, detection): which anchor points learn which object."""
    assigner: str = "centre"  # centre (FCOS's centre sampling) | task-aligned (YOLOv8's TAL)
    topk: int = 10  # task-aligned: each object's positives, its best-aligned points
