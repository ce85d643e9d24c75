"""MAP 6.3: AlphaFold 2's structure geometry. Kabsch and r.m.s.d. against Biopython's
SVDSuperimposer, r.m.s.d.95's outlier rejection, lDDT-Cα on a hand-counted case, Alg 21's
frames, FAPE's invariance (and its mirror sensitivity), and IPA's invariance to a global rigid
motion of all frames."""

import math

import pytest
import torch

from deepatlas.nn.frames import (Rigid, fape, frames_from_three_points, kabsch, lddt_ca, rmsd,
                                 rmsd95)
from deepatlas.nn.ipa import InvariantPointAttention

D = torch.float64


def random_rotation(g: torch.Generator, *shape: int) -> torch.Tensor:
    """Rotations (*shape, 3, 3) with det +1, from the QR of Gaussian matrices."""
    q, r = torch.linalg.qr(torch.randn(*shape, 3, 3, generator=g, dtype=D))
    q = q * torch.diagonal(r, dim1=-2, dim2=-1).sign()[..., None, :]
    q[..., :, 2] *= torch.linalg.det(q)[..., None]  # flip one axis where det = -1
    return q


def random_rigid(g: torch.Generator, *shape: int, scale: float = 10.0) -> Rigid:
    return Rigid(random_rotation(g, *shape),
                 scale * torch.randn(*shape, 3, generator=g, dtype=D))


def backbone(g: torch.Generator, length: int) -> torch.Tensor:
    """A rough random chain (L, 3 atoms N/CA/C, 3): a random walk, not a real protein."""
    return (3.8 * torch.randn(length * 3, 3, generator=g, dtype=D)).cumsum(0).view(length, 3, 3)


def bio_superimpose(mobile: torch.Tensor, target: torch.Tensor):
    sup_mod = pytest.importorskip("Bio.SVDSuperimposer")
    sup = sup_mod.SVDSuperimposer()
    sup.set(target.numpy(), mobile.numpy())  # (reference, coords)
    sup.run()
    rot, tran = sup.get_rotran()  # coords @ rot + tran ≈ reference
    return torch.from_numpy(rot).T, torch.from_numpy(tran), sup.get_rms()


@pytest.mark.parametrize("mirrored", [False, True])
def test_kabsch_and_rmsd_match_biopython(mirrored):
    g = torch.Generator().manual_seed(0)
    mobile = 5 * torch.randn(30, 3, generator=g, dtype=D)
    target = random_rigid(g).apply(mobile) + 0.5 * torch.randn(30, 3, generator=g, dtype=D)
    if mirrored:
        target = target * torch.tensor([-1.0, 1.0, 1.0], dtype=D)
        # the unconstrained orthogonal fit is a reflection here: the sign correction is needed
        p, q = mobile - mobile.mean(0), target - target.mean(0)
        u, _, vh = torch.linalg.svd(p.T @ q)
        assert torch.linalg.det(vh.T @ u.T) < 0
    rot, tran, rms = bio_superimpose(mobile, target)
    fit = kabsch(mobile, target)
    torch.testing.assert_close(fit.rotation, rot, rtol=0, atol=1e-10)
    torch.testing.assert_close(fit.translation, tran, rtol=0, atol=1e-10)
    assert torch.linalg.det(fit.rotation).item() == pytest.approx(1.0, abs=1e-12)
    assert rmsd(mobile, target).item() == pytest.approx(rms, abs=1e-10)


def test_kabsch_batched_and_weighted():
    g = torch.Generator().manual_seed(1)
    mobile = torch.randn(4, 20, 3, generator=g, dtype=D)
    target = torch.randn(4, 20, 3, generator=g, dtype=D)
    batched = rmsd(mobile, target)
    assert batched.shape == (4,)
    for b in range(4):
        assert batched[b].item() == pytest.approx(bio_superimpose(mobile[b], target[b])[2],
                                                  abs=1e-10)
    # 0/1 weights fit on the chosen points alone
    w = (torch.arange(20) % 3 != 0).to(D)
    fit = kabsch(mobile[0], target[0], w)
    sub = kabsch(mobile[0, w > 0], target[0, w > 0])
    torch.testing.assert_close(fit.rotation, sub.rotation, rtol=0, atol=1e-10)
    torch.testing.assert_close(fit.translation, sub.translation, rtol=0, atol=1e-10)


def test_rmsd_of_rigidly_moved_copy_is_zero():
    g = torch.Generator().manual_seed(2)
    x = 10 * torch.randn(50, 3, generator=g, dtype=D)
    moved = random_rigid(g).apply(x)
    assert rmsd(moved, x).item() < 1e-10
    assert rmsd(moved, x, superpose=False).item() > 1.0


def test_rmsd95_drops_the_worst_five_percent():
    g = torch.Generator().manual_seed(3)
    pred = 10 * torch.randn(100, 3, generator=g, dtype=D)
    true = random_rigid(g).apply(pred) + 0.3 * torch.randn(100, 3, generator=g, dtype=D)
    far = torch.randperm(100, generator=g)[:5]
    true[far] += 100 * torch.nn.functional.normalize(torch.randn(5, 3, generator=g, dtype=D))
    rest = torch.ones(100, dtype=torch.bool)
    rest[far] = False
    assert rmsd95(pred, true).item() == pytest.approx(rmsd(pred[rest], true[rest]).item(),
                                                      abs=1e-10)
    assert rmsd95(pred, true).item() < 1.0 < 10.0 < rmsd(pred, true).item()
    # without noise the kept 95% fit exactly
    exact = random_rigid(g).apply(pred)
    exact[far] += 100.0
    assert rmsd95(pred, exact).item() < 1e-10


def test_rmsd95_never_exceeds_rmsd():
    g = torch.Generator().manual_seed(4)
    pred = 10 * torch.randn(64, 40, 3, generator=g, dtype=D)
    noise = torch.rand(64, 1, 1, generator=g, dtype=D) * 5
    true = pred + noise * torch.randn(64, 40, 3, generator=g, dtype=D)
    r95, r = rmsd95(pred, true), rmsd(pred, true)
    assert r95.shape == (64,)
    assert (r95 <= r + 1e-12).all()
    assert (r95 < r).any()


def line(*xs: float) -> torch.Tensor:
    return torch.tensor([[x, 0.0, 0.0] for x in xs], dtype=D)


def test_lddt_hand_counted():
    # true: A=0, B=1, C=2, D=16.5 on a line; within 15 Å: AB, AC, BC and CD (14.5); AD and BD
    # are 16.5 and 15.5 away and not scored. pred moves D by 3 Å (CD passes only the 4 Å
    # threshold: 1/4); the other three pairs are exact (4/4).
    true, pred = line(0, 1, 2, 16.5), line(0, 1, 2, 19.5)
    # pooled over ordered pairs: (2 * (1 + 1 + 1 + 1/4)) / 8 = 13/16
    assert lddt_ca(pred, true).item() == pytest.approx(13 / 16, abs=1e-12)
    # per residue: A (AB, AC) 1, B (BA, BC) 1, C (CA, CB, CD) (1 + 1 + 1/4)/3 = 3/4, D (DC) 1/4;
    # their mean (3/4) is not the pooled score
    per = lddt_ca(pred, true, per_residue=True)
    torch.testing.assert_close(per, torch.tensor([1, 1, 3 / 4, 1 / 4], dtype=D), rtol=0,
                               atol=1e-12)
    # the 15 Å cutoff applies to the true distances only: bringing D close in pred adds nothing
    assert lddt_ca(line(0, 1, 2, 3.0), true).item() == pytest.approx(
        (2 * 3 + 2 * 0) / 8, abs=1e-12)


def test_lddt_identity_and_rigid_invariance():
    g = torch.Generator().manual_seed(5)
    true = backbone(g, 30)[:, 1]  # the Cα trace
    pred = true + 1.0 * torch.randn(30, 3, generator=g, dtype=D)
    assert lddt_ca(true, true).item() == 1.0
    score = lddt_ca(pred, true)
    assert 0.0 < score.item() < 1.0
    assert lddt_ca(random_rigid(g).apply(pred), true).item() == pytest.approx(score.item(),
                                                                               abs=1e-12)
    assert lddt_ca(pred, random_rigid(g).apply(true)).item() == pytest.approx(score.item(),
                                                                               abs=1e-12)


def test_frames_from_three_points():
    g = torch.Generator().manual_seed(6)
    x1, x2, x3 = backbone(g, 16).unbind(-2)  # N, CA, C: (16, 3) each
    t = frames_from_three_points(x1, x2, x3)
    eye = torch.eye(3, dtype=D).expand(16, 3, 3)
    torch.testing.assert_close(t.rotation.transpose(-1, -2) @ t.rotation, eye, rtol=0,
                               atol=1e-12)
    torch.testing.assert_close(torch.linalg.det(t.rotation), torch.ones(16, dtype=D))
    torch.testing.assert_close(t.translation, x2, rtol=0, atol=0)  # origin at x2
    local3, local1 = t.invert_apply(x3), t.invert_apply(x1)
    # x3 on the +x axis at its distance; x1 in the xy plane with y > 0
    torch.testing.assert_close(local3, (x3 - x2).norm(dim=-1)[:, None] * eye[:, 0], rtol=0,
                               atol=1e-10)
    assert local1[:, 2].abs().max() < 1e-10 and (local1[:, 1] > 0).all()


def test_rigid_compose_and_invert():
    g = torch.Generator().manual_seed(7)
    t1, t2 = random_rigid(g, 5), random_rigid(g, 5)
    x = torch.randn(5, 3, generator=g, dtype=D)
    torch.testing.assert_close(t1.compose(t2).apply(x), t1.apply(t2.apply(x)))
    torch.testing.assert_close(t1.invert().apply(t1.apply(x)), x)
    torch.testing.assert_close(t1.invert_apply(x), t1.invert().apply(x))
    ident = t1.compose(t1.invert())
    torch.testing.assert_close(ident.rotation, torch.eye(3, dtype=D).expand(5, 3, 3))
    torch.testing.assert_close(ident.translation, torch.zeros(5, 3, dtype=D))
    torch.testing.assert_close(Rigid.identity((5,), dtype=D).compose(t1).apply(x), t1.apply(x))


def _structure(atoms: torch.Tensor) -> tuple[Rigid, torch.Tensor]:
    """Backbone frames from (L, 3, 3) N/CA/C atoms, and all atoms as the scored points."""
    return frames_from_three_points(*atoms.unbind(-2)), atoms.reshape(-1, 3)


def test_fape_zero_invariant_and_mirror_sensitive():
    g = torch.Generator().manual_seed(8)
    true_atoms = backbone(g, 20)
    pred_atoms = true_atoms + 0.5 * torch.randn(20, 3, 3, generator=g, dtype=D)
    true_frames, true_points = _structure(true_atoms)
    pred_frames, pred_points = _structure(pred_atoms)
    same = fape(true_frames, true_points, true_frames, true_points)
    assert same.item() == pytest.approx(math.sqrt(1e-4) / 10, abs=1e-12)
    loss = fape(pred_frames, pred_points, true_frames, true_points)
    assert loss.item() > 0.02
    move = random_rigid(g)
    moved = fape(move.compose(pred_frames), move.apply(pred_points), true_frames, true_points)
    assert moved.item() == pytest.approx(loss.item(), abs=1e-10)
    # a mirror image keeps every distance (lDDT 1) yet FAPE sees the wrong hand
    mirror_frames, mirror_points = _structure(true_atoms * torch.tensor([-1.0, 1, 1], dtype=D))
    assert lddt_ca(mirror_points, true_points).item() == 1.0
    assert fape(mirror_frames, mirror_points, true_frames, true_points).item() > 0.1


def _ipa_inputs(g: torch.Generator, b: int = 2, length: int = 7, c_s: int = 12, c_z: int = 6):
    s = torch.randn(b, length, c_s, generator=g, dtype=D)
    z = torch.randn(b, length, length, c_z, generator=g, dtype=D)
    # residues about one unit apart, like AF2's (in nm): frames 10 units apart would make
    # every residue attend to itself alone, and turning its frame would then change nothing
    return s, z, random_rigid(g, b, length, scale=1.0)


def test_ipa_invariant_to_global_rigid_motion():
    g = torch.Generator().manual_seed(9)
    torch.manual_seed(0)
    ipa = InvariantPointAttention(12, 6, heads=3, c_hidden=5, query_points=4,
                                  value_points=3).double()
    s, z, frames = _ipa_inputs(g)
    out = ipa(s, z, frames.rotation, frames.translation)
    assert out.shape == s.shape
    moved = random_rigid(g, 2, 1).compose(frames)  # one global motion per batch element
    out_moved = ipa(s, z, moved.rotation, moved.translation)
    torch.testing.assert_close(out_moved, out, rtol=0, atol=1e-10)
    # turning a single residue's frame changes the output: it is not blind to frames
    rot = frames.rotation.clone()
    rot[0, 3] = rot[0, 3] @ random_rotation(g)
    changed = ipa(s, z, rot, frames.translation)
    assert (changed - out).abs().max() > 1e-3


def test_ipa_gradients_reach_every_parameter():
    g = torch.Generator().manual_seed(10)
    torch.manual_seed(0)
    ipa = InvariantPointAttention(12, 6, heads=2, c_hidden=4, query_points=2,
                                  value_points=2).double()
    s, z, frames = _ipa_inputs(g)
    ipa(s, z, frames.rotation, frames.translation).pow(2).sum().backward()
    for name, p in ipa.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
