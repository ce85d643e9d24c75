"""Losses of the map: label smoothing and soft targets (MAP 3.3), the GAN losses (4.3), Dice
and IoU (6.1, segmentation), ESRGAN's relativistic and perceptual losses (6.1), and SimCLR's
NT-Xent (7.4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_target_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean_i -sum_k q_ik log softmax(z_i)_k`` for target distributions ``q`` (B, K)."""
    return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def label_smoothing_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                                  epsilon: float = 0.1) -> torch.Tensor:
    """Cross-entropy against ``y~ = (1 - eps) y + eps / K`` (Szegedy et al. 2016), where ``y``
    is the one-hot label: the model is never pushed to infinite logits. Equals
    ``nn.CrossEntropyLoss(label_smoothing=eps)``."""
    k = logits.shape[-1]
    smoothed = F.one_hot(target, k).to(logits.dtype) * (1 - epsilon) + epsilon / k
    return soft_target_cross_entropy(logits, smoothed)


# --------------------------------------------------------------------------- GANs (MAP 4.3)
#
# min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))]. The discriminator returns logits d, so
# D = sigmoid(d); log-sigmoid forms keep the losses finite when D saturates.


def gan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``-(E[log D(x)] + E[log(1 - D(G(z)))])``: the discriminator's side of the minimax game."""
    return -(F.logsigmoid(real_logits).mean() + F.logsigmoid(-fake_logits).mean())


def gan_minimax_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """``E[log(1 - D(G(z)))]``, minimised by G: the original form, whose gradient vanishes
    when D confidently rejects the fakes (early in training)."""
    return F.logsigmoid(-fake_logits).mean()


def gan_nonsaturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """``-E[log D(G(z))]``: the same fixed point, strong gradients when D wins (Goodfellow
    et al. 2014, section 3)."""
    return -F.logsigmoid(fake_logits).mean()


def wasserstein_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic (Arjovsky et al. 2017): maximise ``E[f(x)] - E[f(G(z))]``, an estimate of
    the Wasserstein-1 distance for a 1-Lipschitz f; returned negated, to minimise."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """``-E[f(G(z))]``."""
    return -fake_scores.mean()


def gradient_penalty(critic: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor
                     ) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): ``E[(||grad_x^ f(x^)||_2 - 1)^2]`` at random points
    ``x^ = e x + (1 - e) x~`` between real and fake samples, ``e ~ U(0, 1)`` per sample. The
    caller multiplies by lambda (10 in the paper). Differentiable, for the critic's update."""
    eps = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), device=real.device,
                     dtype=real.dtype)
    mixed = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


# --------------------------------------------------------------------------- distillation (5.3)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      target: torch.Tensor, alpha: float = 0.5, temperature: float = 4.0
                      ) -> torch.Tensor:
    """Knowledge distillation (Hinton et al. 2015), as MAP 5.3 corrects it::

        L = alpha * CE(y, softmax(z_s)) + (1 - alpha) * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

    Softening by T spreads the teacher's probability over the wrong classes, which is where
    its knowledge about similarity lives. The gradient of the KL term with respect to z_s
    shrinks as 1/T^2 for large T, so T^2 keeps the two terms' gradients on the same scale
    whatever T is chosen.
    """
    hard = F.cross_entropy(student_logits, target)
    return alpha * hard + (1 - alpha) * soft_distillation_loss(student_logits, teacher_logits,
                                                               temperature)


def soft_distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                           temperature: float = 4.0) -> torch.Tensor:
    """The teacher's half of :func:`distillation_loss`:
    ``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``, averaged over the batch."""
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, dim=-1),
                  F.log_softmax(teacher_logits.detach() / t, dim=-1),
                  reduction="batchmean", log_target=True)  # KL(p_t || p_s), mean over batch
    return t * t * kl


def overlap_counts(pred: torch.Tensor, target: torch.Tensor, num_classes: int
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per class, the pixel counts of true positives, false positives and false negatives of
    label maps ``pred`` and ``target`` (any shape, class indices): (K,), (K,), (K,). Summed
    over a data set, they give its Dice and IoU (:func:`dice_iou`)."""
    index = target.reshape(-1) * num_classes + pred.reshape(-1)
    confusion = torch.bincount(index, minlength=num_classes ** 2).reshape(num_classes, -1)
    tp = confusion.diagonal()
    return tp, confusion.sum(0) - tp, confusion.sum(1) - tp


def dice_iou(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Dice (the F1 of pixels) and IoU (Jaccard), per class, from the counts:

        Dice = 2 TP / (2 TP + FP + FN),   IoU = TP / (TP + FP + FN) = Dice / (2 - Dice).

    A class absent from both prediction and target has no score (NaN), as in torchmetrics."""
    tp, fp, fn = (t.double() for t in (tp, fp, fn))
    dice = 2 * tp / (2 * tp + fp + fn)
    iou = tp / (tp + fp + fn)
    return dice, iou


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean over classes of the soft Dice of softmax probabilities p and one-hot targets y
    (Milletari et al. 2016, V-Net): ``1 - (2 sum p y + eps) / (sum p + sum y + eps)``, summed
    over the batch's pixels. ``logits`` (B, K, H, W), ``target`` (B, H, W)."""
    p = logits.float().softmax(1)
    y = torch.nn.functional.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(p.dtype)
    dims = (0, 2, 3)
    dice = (2 * (p * y).sum(dims) + eps) / (p.sum(dims) + y.sum(dims) + eps)
    return 1 - dice.mean()


def relativistic_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor
                                    ) -> torch.Tensor:
    """ESRGAN's relativistic average discriminator (Jolicoeur-Martineau 2018):
    ``D_Ra(x_r, x_f) = sigmoid(C(x_r) - E[C(x_f)])``, and
    ``L_D = -E log D_Ra(x_r, x_f) - E log(1 - D_Ra(x_f, x_r))``: is a real image more
    realistic than the fakes on average, and a fake less than the reals?"""
    real_rel = real_scores - fake_scores.mean()
    fake_rel = fake_scores - real_scores.mean()
    return (F.binary_cross_entropy_with_logits(real_rel, torch.ones_like(real_rel))
            + F.binary_cross_entropy_with_logits(fake_rel, torch.zeros_like(fake_rel)))


def relativistic_generator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor
                                ) -> torch.Tensor:
    """The generator's side, symmetric: ``L_G = -E log(1 - D_Ra(x_r, x_f)) - E log D_Ra(x_f,
    x_r)``. Unlike a standard GAN's, both terms reach the generator: the first, about real
    images, through ``E[C(x_f)]`` (the real scores themselves do not depend on it)."""
    return relativistic_discriminator_loss(fake_scores, real_scores)


def _random_vgg19_prefix() -> torch.nn.Sequential:
    """VGG19's layers conv1_1 .. conv2_2 (before its ReLU), randomly initialised as torchvision
    initialises VGG, from seed 0. Built alone: the whole VGG19 has 143 M parameters."""
    nn = torch.nn
    layers = [nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(inplace=True),
              nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
              nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(inplace=True),
              nn.Conv2d(128, 128, 3, padding=1)]
    generator = torch.Generator().manual_seed(0)
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            fan_out = layer.out_channels * 9
            with torch.no_grad():
                layer.weight.normal_(0, (2 / fan_out) ** 0.5, generator=generator)
                layer.bias.zero_()
    return nn.Sequential(*layers)


class PerceptualLoss(torch.nn.Module):
    """``L_percep = || phi(SR) - phi(HR) ||_1``, with ``phi`` a VGG19 prefix before its
    activation (ESRGAN compares features before the ReLU, where they are denser).

    ESRGAN's ``phi`` is ImageNet-pretrained VGG19 up to conv5_4. Pretrained weights cannot be
    downloaded here, so ``phi`` is the same architecture up to conv2_2 (VGG19's first 8
    layers) with **random, fixed weights** (seed 0, torchvision's VGG initialisation: Kaiming
    normal, fan-out, zero biases). Random conv
    features still measure local structure: He, Wang and Hopcroft (NeurIPS 2016) synthesised
    textures as well from random-weight VGG features as from trained ones. What they lack is
    ImageNet's semantics, so this loss asks for matching edges and textures, not for
    "realistic grass". A user with the weights can pass any ``features`` module."""

    def __init__(self, features: torch.nn.Module | None = None) -> None:
        super().__init__()
        if features is None:
            features = _random_vgg19_prefix()
        self.features = features.eval().requires_grad_(False)
        # ImageNet's statistics, as VGG's input expects
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> "PerceptualLoss":
        return super().train(False)  # frozen: never leaves eval mode

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """``sr`` and ``hr`` (B, 3, H, W) in [0, 1]."""
        phi_sr = self.features((sr - self.mean) / self.std)
        with torch.no_grad():
            phi_hr = self.features((hr - self.mean) / self.std)
        return F.l1_loss(phi_sr, phi_hr)


# ------------------------------------------------------------ self-supervised (MAP 7.4)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5,
            all_z1: torch.Tensor | None = None, all_z2: torch.Tensor | None = None,
            rank: int = 0) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy (Chen et al. 2020, eq. 1) for the
    projections of two views, z1 and z2 (N, D); (z1[i], z2[i]) is a positive pair::

        l(i, j) = -log  exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau)

    with sim the cosine similarity, over all 2N anchors (each one's negatives are the other
    2N - 2 views), averaged. Equals pytorch-metric-learning's ``NTXentLoss(tau)``.

    Under torchrun each process passes its own views and every process's (``all_z1``,
    ``all_z2``: (W·N, D) in rank order, the paper's gathered batch): its 2N anchors against
    all 2·W·N views, so the mean of the W processes' losses is the loss of the whole batch."""
    anchors = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2N, D)
    if all_z1 is None or all_z2 is None:  # one process: the anchors are all the views
        views, total, rank = anchors, len(z1), 0
    else:
        views = F.normalize(torch.cat([all_z1, all_z2]).float(), dim=1)  # (2WN, D)
        total = len(all_z1)
    n = len(z1)
    logits = anchors @ views.T / temperature  # (2N, 2WN)
    own = rank * n + torch.arange(n, device=logits.device)  # where z1 sits among all_z1
    itself = torch.cat([own, total + own])  # each anchor's own column: k != i
    mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, itself[:, None], True)
    logits = logits.masked_fill(mask, float("-inf"))
    positives = torch.cat([total + own, own])  # z1[i] <-> z2[i]
    return F.cross_entropy(logits, positives)


# ------------------------------------------------------------ image-text (MAP 6.3)


def clip_loss(logits_per_image: torch.Tensor, logits_per_text: torch.Tensor | None = None,
              target: torch.Tensor | None = None) -> torch.Tensor:
    """CLIP's symmetric InfoNCE (Radford et al. 2021, figure 3) of the (N, N) similarities
    ``logits[i, j] = <I_i, T_j> / tau`` of N images and their N captions (pair i on the
    diagonal)::

        L = ( mean_i -log softmax_j(logits)[i, i]  +  mean_j -log softmax_i(logits)[j, j] ) / 2

    image -> text and text -> image, each a cross-entropy over the batch. Equals open_clip's
    ``ClipLoss`` on one process. Under torchrun each process passes its own rows, open_clip's
    "local loss": its B images against all W·B captions, its B captions against all W·B
    images, and ``target`` where its pairs sit among them (rank·B + i); the mean of the W
    processes' losses is then L of the global batch."""
    logits = logits_per_image.float()
    per_text = logits.T if logits_per_text is None else logits_per_text.float()
    if target is None:
        target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(per_text, target)) / 2
