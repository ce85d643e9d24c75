"""MAP 6.3: AlphaFold 2's Evoformer blocks against PyTorch's attention, explicit loops and
einsums written from the supplement's Algorithms 7-14, their transposition identities, and the
block's symmetries (residue permutation equivariance, MSA-order invariance of z)."""

import math

import pytest
import torch
import torch.nn.functional as F

from deepatlas.nn import evoformer
from deepatlas.nn.evoformer import (Evoformer, EvoformerBlock, MSAColumnAttention,
                                    MSARowAttentionWithPairBias, OuterProductMean,
                                    TriangleAttention, TriangleMultiplication, Transition,
                                    shared_dropout)

B, S, L, C_M, C_Z, HEADS, C_HID = 2, 3, 5, 8, 6, 2, 4
TOL = dict(atol=1e-10, rtol=0)


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Float64, every parameter drawn from N(0, 0.2^2): the paper's zero "final" init would make
    every update 0 and every comparison below vacuous."""
    module.double().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.2)
    return module


def msa_and_pair(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, S, L, C_M, generator=g, dtype=torch.float64),
            torch.randn(B, L, L, C_Z, generator=g, dtype=torch.float64))


def heads(x: torch.Tensor) -> torch.Tensor:  # (..., T, h*c) -> (..., h, T, c)
    return x.unflatten(-1, (HEADS, C_HID)).transpose(-3, -2)


def test_shapes_and_a_fresh_block_is_the_identity():
    m, z = msa_and_pair()
    m, z = m.float(), z.float()
    assert MSARowAttentionWithPairBias(C_M, C_Z, HEADS, C_HID)(m, z).shape == m.shape
    assert MSAColumnAttention(C_M, HEADS, C_HID)(m).shape == m.shape
    assert Transition(C_M)(m).shape == m.shape and Transition(C_Z, n=2)(z).shape == z.shape
    assert OuterProductMean(C_M, C_Z, 3)(m).shape == z.shape
    for flag in (True, False):
        assert TriangleMultiplication(C_Z, 7, outgoing=flag)(z).shape == z.shape
        assert TriangleAttention(C_Z, HEADS, C_HID, starting=flag)(z).shape == z.shape
    out_m, out_z = Evoformer(2, C_M, C_Z, HEADS, HEADS, C_HID)(m, z)
    assert out_m.shape == m.shape and out_z.shape == z.shape
    # zero "final" layers: every update is exactly 0 at initialisation
    assert torch.equal(out_m, m) and torch.equal(out_z, z)


def test_gradients_reach_every_parameter():
    block = randomise(EvoformerBlock(C_M, C_Z, HEADS, HEADS, C_HID)).train()
    m, z = msa_and_pair()
    out_m, out_z = block(m, z)
    g = torch.Generator().manual_seed(2)
    loss = ((out_m * torch.randn(out_m.shape, generator=g, dtype=torch.float64)).sum()
            + (out_z * torch.randn(out_z.shape, generator=g, dtype=torch.float64)).sum())
    loss.backward()
    for name, p in block.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_row_attention_equals_torch_sdpa_with_the_pair_bias_as_float_mask():
    """Algorithm 7 with its softmax-attention core done by F.scaled_dot_product_attention: the
    pair bias b_ij is torch's additive float attn_mask, shared by every row s."""
    row = randomise(MSARowAttentionWithPairBias(C_M, C_Z, HEADS, C_HID))
    att = row.attention
    m, z = msa_and_pair()
    x = row.norm_m(m)
    q, k, v = heads(att.q(x)), heads(att.k(x)), heads(att.v(x))  # (B, S, h, L, c)
    bias = row.pair_bias(row.norm_z(z)).permute(0, 3, 1, 2)[:, None]  # (B, 1, h, L, L)
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.expand(B, S, HEADS, L, L))
    expected = att.out(torch.sigmoid(att.gate(x)) * o.transpose(-3, -2).flatten(-2))
    torch.testing.assert_close(row(m, z), expected, **TOL)
    assert (row(m, z) - row(m, z.flip(1))).abs().max() > 1e-3  # the bias does matter


def test_column_attention_is_row_attention_on_the_transposed_msa():
    col = randomise(MSAColumnAttention(C_M, HEADS, C_HID))
    row = randomise(MSARowAttentionWithPairBias(C_M, C_Z, HEADS, C_HID), seed=5)
    row.norm_m.load_state_dict(col.norm.state_dict())
    row.attention.load_state_dict(col.attention.state_dict())
    torch.nn.init.zeros_(row.pair_bias.weight)
    m, _ = msa_and_pair()
    z_over_s = torch.randn(B, S, S, C_Z, dtype=torch.float64)  # any z: its bias is zero
    expected = row(m.transpose(1, 2), z_over_s).transpose(1, 2)
    torch.testing.assert_close(col(m), expected, **TOL)


def triangle_attention_reference(t: TriangleAttention, z: torch.Tensor) -> torch.Tensor:
    """Algorithms 13 and 14 written index for index."""
    def split(y: torch.Tensor) -> torch.Tensor:  # (B, L, L, h*c) -> (B, L, L, h, c)
        return y.unflatten(-1, (HEADS, C_HID))

    x = t.norm(z)
    q, k, v, g = (split(t.attention.q(x)), split(t.attention.k(x)), split(t.attention.v(x)),
                  torch.sigmoid(split(t.attention.gate(x))))
    b = t.pair_bias(x)  # (B, L, L, h)
    if t.starting:  # softmax_k(q_ij . k_ik + b_jk), sum_k a_ijk v_ik
        logits = torch.einsum("bijhc,bikhc->bijkh", q, k) / math.sqrt(C_HID) + b[:, None]
        o = torch.einsum("bijkh,bikhc->bijhc", logits.softmax(dim=3), v)
    else:  # softmax_k(q_ij . k_kj + b_ki), sum_k a_ijk v_kj
        logits = (torch.einsum("bijhc,bkjhc->bijkh", q, k) / math.sqrt(C_HID)
                  + b.transpose(1, 2)[:, :, None])
        o = torch.einsum("bijkh,bkjhc->bijhc", logits.softmax(dim=3), v)
    return t.attention.out((g * o).flatten(-2))


def test_triangle_attention_follows_algorithms_13_14_and_ending_is_starting_transposed():
    """TriangleAttention(ending)(z) == TriangleAttention(starting, same weights)(z^T)^T, and
    both equal the supplement's formulas (which do not transpose anything)."""
    start = randomise(TriangleAttention(C_Z, HEADS, C_HID, starting=True))
    end = TriangleAttention(C_Z, HEADS, C_HID, starting=False).double().eval()
    end.load_state_dict(start.state_dict())
    _, z = msa_and_pair()
    torch.testing.assert_close(end(z), start(z.transpose(1, 2)).transpose(1, 2), **TOL)
    torch.testing.assert_close(start(z), triangle_attention_reference(start, z), **TOL)
    torch.testing.assert_close(end(z), triangle_attention_reference(end, z), **TOL)
    assert (start(z) - end(z)).abs().max() > 1e-3


def test_triangle_multiplication_outgoing_equals_a_loop():
    mul = randomise(TriangleMultiplication(C_Z, 3, outgoing=True))
    _, z = msa_and_pair()
    x = mul.norm_in(z)
    a = torch.sigmoid(mul.a_gate(x)) * mul.a(x)
    b = torch.sigmoid(mul.b_gate(x)) * mul.b(x)
    s = torch.zeros(B, L, L, 3, dtype=torch.float64)
    for i in range(L):
        for j in range(L):
            for k in range(L):
                s[:, i, j] += a[:, i, k] * b[:, j, k]
    expected = torch.sigmoid(mul.gate(x)) * mul.out(mul.norm_out(s))
    torch.testing.assert_close(mul(z), expected, **TOL)


def test_triangle_multiplication_incoming_is_outgoing_on_transposed_z_with_a_b_swapped():
    """Incoming(z) = Outgoing'(z^T)^T, Outgoing' having the (a, a_gate) and (b, b_gate)
    projections exchanged. With z'_ij = z_ji, a'_ij = a_ji, so Outgoing' sums
    b'_ik a'_jk = b_ki a_kj at ij, i.e. Incoming's a_kj b_ki at ji; the gate g'_ij = g_ji, so
    transposing back gives g_ij LN-projected sum_k a_ki b_kj. Without the swap one gets
    sum_k a_kj b_ki instead (AlphaFold's code's incoming), which differs."""
    incoming = randomise(TriangleMultiplication(C_Z, 3, outgoing=False))
    swapped = TriangleMultiplication(C_Z, 3, outgoing=True).double().eval()
    state = incoming.state_dict()
    swap = {"a.": "b.", "b.": "a.", "a_gate.": "b_gate.", "b_gate.": "a_gate."}
    for key in list(state):
        prefix = key.split(".")[0] + "."
        swapped_key = swap.get(prefix, prefix) + key[len(prefix):]
        swapped.state_dict()[swapped_key].copy_(state[key])
    _, z = msa_and_pair()
    torch.testing.assert_close(incoming(z), swapped(z.transpose(1, 2)).transpose(1, 2), **TOL)
    outgoing = TriangleMultiplication(C_Z, 3, outgoing=True).double().eval()
    outgoing.load_state_dict(state)
    assert (incoming(z) - outgoing(z.transpose(1, 2)).transpose(1, 2)).abs().max() > 1e-3


def test_outer_product_mean_equals_a_loop():
    opm = randomise(OuterProductMean(C_M, C_Z, 3))
    m, _ = msa_and_pair()
    x = opm.norm(m)
    a, b = opm.a(x), opm.b(x)  # (B, S, L, 3)
    o = torch.zeros(B, L, L, 9, dtype=torch.float64)
    for n in range(B):
        for i in range(L):
            for j in range(L):
                o[n, i, j] = sum(torch.outer(a[n, s, i], b[n, s, j]).flatten()
                                 for s in range(S)) / S
    torch.testing.assert_close(opm(m), opm.out(o), **TOL)


def test_block_is_equivariant_to_residues_and_z_invariant_to_msa_order():
    block = randomise(EvoformerBlock(C_M, C_Z, HEADS, HEADS, C_HID))
    m, z = msa_and_pair()
    out_m, out_z = block(m, z)
    assert (out_m - m).abs().max() > 1e-2 and (out_z - z).abs().max() > 1e-2
    perm = torch.randperm(L, generator=torch.Generator().manual_seed(3))
    pm, pz = block(m[:, :, perm], z[:, perm][:, :, perm])
    torch.testing.assert_close(pm, out_m[:, :, perm], **TOL)
    torch.testing.assert_close(pz, out_z[:, perm][:, :, perm], **TOL)
    rows = torch.tensor([2, 0, 1])
    pm, pz = block(m[:, rows], z)
    torch.testing.assert_close(pm, out_m[:, rows], **TOL)
    torch.testing.assert_close(pz, out_z, **TOL)


@pytest.mark.parametrize("shared_dim", [-3, -2])
def test_shared_dropout_mask_is_shared_along_one_axis(shared_dim):
    x = torch.ones(2, 6, 7, 8)
    torch.manual_seed(0)
    out = shared_dropout(x, 0.5, shared_dim, training=True)
    assert set(out.unique().tolist()) == {0.0, 2.0}  # kept entries scaled by 1 / (1 - p)
    first = out.select(shared_dim, 0).unsqueeze(shared_dim)
    assert torch.equal(out, first.expand_as(out))  # one mask along shared_dim
    other = -2 if shared_dim == -3 else -3
    assert not torch.equal(out, out.select(other, 0).unsqueeze(other).expand_as(out))
    assert torch.equal(shared_dropout(x, 0.5, shared_dim, training=False), x)


def test_block_dropout_only_in_training_on_the_papers_axes(monkeypatch):
    block = randomise(EvoformerBlock(C_M, C_Z, HEADS, HEADS, C_HID, dropout=0.3))
    m, z = msa_and_pair()
    first, second = block(m, z), block(m, z)
    assert all(torch.equal(a, b) for a, b in zip(first, second))  # eval: deterministic
    block.train()
    torch.manual_seed(0)
    dropped = block(m, z)
    assert (dropped[1] - first[1]).abs().max() > 1e-3
    axes = []

    def spy(x, p, shared_dim, training):
        axes.append(shared_dim)
        return shared_dropout(x, p, shared_dim, training)

    monkeypatch.setattr(evoformer, "shared_dropout", spy)
    torch.manual_seed(0)
    again = block(m, z)
    assert all(torch.equal(a, b) for a, b in zip(dropped, again))  # same seed, same masks
    # row attention and triangle out / in / start rowwise, triangle end columnwise
    assert axes == [-3, -3, -3, -3, -2]
