"""The source's layers for the scratch engine: conv (by im2col), max-pool, cross-entropy."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from deepatlas.scratch.engine import Tensor


def conv2d(x: Tensor, weight: Tensor, bias: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    """Cross-correlation as one matrix product (im2col).

    Every kh x kw patch of the padded input becomes a row of ``cols`` (N*OH*OW, C*kh*kw); then
    ``out = cols @ W^T + b`` with ``W`` reshaped to (O, C*kh*kw). Backward: ``dW = dout^T cols``,
    ``dcols = dout W``, and col2im adds each patch's gradient back where the patch came from.
    """
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    xp = np.pad(x.data, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    patches = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    oh, ow = patches.shape[2], patches.shape[3]  # patches: (N, C, OH, OW, kh, kw)
    cols = patches.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
    w_mat = weight.data.reshape(o, -1)  # (O, C*kh*kw)
    out_mat = cols @ w_mat.T + bias.data  # (N*OH*OW, O)
    out = Tensor(out_mat.reshape(n, oh, ow, o).transpose(0, 3, 1, 2),
                 parents=(x, weight, bias), op="conv2d")

    def backward() -> None:
        dout = out.grad.transpose(0, 2, 3, 1).reshape(n * oh * ow, o)
        weight._accumulate((dout.T @ cols).reshape(weight.shape))
        bias._accumulate(dout.sum(axis=0))
        dcols = (dout @ w_mat).reshape(n, oh, ow, c, kh, kw)
        dxp = np.zeros_like(xp)
        for i in range(kh):  # col2im: kernel offset (i, j) touched xp[.., i + s*y, j + s*x]
            for j in range(kw):
                dxp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += (
                    dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2))
        x._accumulate(dxp[:, :, padding:padding + h, padding:padding + w])

    out._backward = backward
    return out


def max_pool2d(x: Tensor, size: int = 2) -> Tensor:
    """Non-overlapping ``size`` x ``size`` max-pool; the gradient goes to each window's max."""
    n, c, h, w = x.shape
    oh, ow = h // size, w // size
    windows = (x.data[:, :, :oh * size, :ow * size]
               .reshape(n, c, oh, size, ow, size).transpose(0, 1, 2, 4, 3, 5)
               .reshape(n, c, oh, ow, size * size))
    argmax = windows.argmax(axis=-1)  # (N, C, OH, OW): which element of each window won
    out = Tensor(np.take_along_axis(windows, argmax[..., None], -1)[..., 0], parents=(x,),
                 op="max_pool2d")

    def backward() -> None:
        dwin = np.zeros_like(windows)
        np.put_along_axis(dwin, argmax[..., None], out.grad[..., None], axis=-1)
        dx = np.zeros_like(x.data)
        dx[:, :, :oh * size, :ow * size] = (dwin.reshape(n, c, oh, ow, size, size)
                                            .transpose(0, 1, 2, 4, 3, 5)
                                            .reshape(n, c, oh * size, ow * size))
        x._accumulate(dx)

    out._backward = backward
    return out


def cross_entropy(logits: Tensor, target: np.ndarray) -> Tensor:
    """Mean softmax cross-entropy ``-log softmax(z)_y``; its gradient is
    ``(softmax(z) - onehot(y)) / N``."""
    z = logits.data - logits.data.max(axis=1, keepdims=True)  # stable: shift by the max
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = len(target)
    out = Tensor(-log_probs[np.arange(n), target].mean(), parents=(logits,), op="cross_entropy")

    def backward() -> None:
        grad = np.exp(log_probs)
        grad[np.arange(n), target] -= 1
        logits._accumulate(out.grad * grad / n)

    out._backward = backward
    return out
