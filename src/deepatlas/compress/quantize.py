"""INT8 quantisation for CPU inference (MAP 5.3): ``deepatlas quantize RUN``.

Post-training static quantisation maps each float tensor to 8-bit integers with an affine map

    q = clamp(round(x / s) + z, 0, 255),    x ~ s * (q - z)

Weights get one scale per output channel (``s_c = max|W_c| / 127``, symmetric); activations
get one scale and zero point per tensor, from the range observed on ``N`` calibration images.
Conv + BatchNorm + ReLU are fused first (BN folded into the conv's weights), so the INT8 net
does one integer conv where the float net did three ops.

Which PyTorch path, and why (measured on this project's 2-core x86 CPU, ResNet-8 w32):
FX graph mode with the ``x86`` backend (fbgemm/oneDNN kernels) made batch-256 inference 4-7x
faster than fp32 eager. torch.ao.quantization warns that it will move to torchao; torchao's
pt2e flow needs ``torch.compile`` to be fast, which the issue measured as slower at batch 256.
We keep the x86 flow and hide its deprecation notices (they are ours to track, not the
user's); ``deepatlas quantize`` prints nothing but its result.

Quantisation-aware training (``--qat``) fine-tunes with fake quantisation in the forward
pass (straight-through gradients), for models that lose too much accuracy after PTQ.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from deepatlas.errors import UserError

INT8_FORMAT = "deepatlas-int8-v1"
BACKEND = "x86"


@contextlib.contextmanager
def _quiet():
    """torch.ao.quantization's deprecation and reduce_range notices are not the user's to act
    on; everything else still shows."""
    with warnings.catch_warnings():
        for pattern in ("torch.ao.quantization is deprecated", ".*reduce_range will be deprecated",
                        ".*quantized tensor creation functions", "TypedStorage is deprecated"):
            warnings.filterwarnings("ignore", message=pattern)
        yield


def _prepare(model: nn.Module, example: torch.Tensor, qat: bool) -> nn.Module:
    """Fuse and insert observers (or fake-quant modules for QAT), by tracing with torch.fx."""
    from torch.ao.quantization import (get_default_qat_qconfig_mapping,
                                       get_default_qconfig_mapping)
    from torch.ao.quantization.quantize_fx import prepare_fx, prepare_qat_fx

    torch.backends.quantized.engine = BACKEND
    try:
        with _quiet():
            if qat:
                return prepare_qat_fx(model.train(), get_default_qat_qconfig_mapping(BACKEND),
                                      (example,))
            return prepare_fx(model.eval(), get_default_qconfig_mapping(BACKEND), (example,))
    except Exception as exc:  # noqa: BLE001  torch.fx raises many types on untraceable code
        raise UserError(f"this model cannot be traced by torch.fx for INT8 quantisation "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); the "
                        "convolutional and MLP models (cnn, resnet, resnet18, resnet50, mlp, "
                        "mobilenet) can") from None


def _convert(prepared: nn.Module) -> nn.Module:
    from torch.ao.quantization.quantize_fx import convert_fx

    with _quiet():
        return convert_fx(prepared.eval())


def state_bytes(module: nn.Module) -> int:
    """Size of the module's weights as ``torch.save`` writes them."""
    buffer = io.BytesIO()
    with _quiet():
        torch.save(module.state_dict(), buffer)
    return buffer.getbuffer().nbytes


@torch.inference_mode()
def latency_ms(module: nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median wall time of one forward pass, in milliseconds, after two warm-up calls."""
    module.eval()
    times = []
    with _quiet():
        for i in range(repeats + 2):
            t0 = time.perf_counter()
            module(x)
            if i >= 2:
                times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _calibration_batch(data, n: int, seed: int) -> torch.Tensor:
    from deepatlas.data import make_loader

    loader = make_loader(data, "train", min(n, 256), seed=seed, num_workers=0)
    batches, have = [], 0
    for x, _ in loader:
        batches.append(x)
        have += len(x)
        if have >= n:
            break
    return torch.cat(batches)[:n].float()  # (N, C, H, W), normalised


def _fine_tune_qat(prepared: nn.Module, data, config, epochs: int, lr: float,
                   seed: int) -> None:
    """A short QAT fine-tune: SGD + Nesterov, cosine from ``lr`` to 0, the recipe's
    augmentation and label smoothing."""
    from deepatlas.data import make_loader

    loader = make_loader(data, "train", config.train.batch_size, augment=config.data.augment,
                         seed=seed, num_workers=config.data.num_workers)
    optimizer = torch.optim.SGD(prepared.parameters(), lr=lr, momentum=0.9, nesterov=True)
    total, step = epochs * len(loader), 0
    prepared.train()
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for x, y in loader:
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            with _quiet():
                loss = F.cross_entropy(prepared(x.float()), y,
                                       label_smoothing=config.regularize.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1


def quantize_checkpoint(run_or_file: str | Path, calibration: int = 512,
                        out: str | Path | None = None, qat: bool = False, qat_epochs: int = 1,
                        qat_lr: float = 1e-3, seed: int = 0, force: bool = False
                        ) -> dict[str, Any]:
    """Quantise a trained image classifier to INT8; write it and a JSON report beside it.

    Returns the report: size in bytes, test accuracy and latency at batch 1 and 256, for the
    fp32 model and the INT8 one, all measured in this call on this machine.
    """
    from deepatlas.config import from_dict
    from deepatlas.data import make_loader
    from deepatlas.models.saved import describe, model_from_checkpoint
    from deepatlas.outputs import check_output, write_via_temp
    from deepatlas.tasks.classify_images import data_for
    from deepatlas.train.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
    from deepatlas.train.runinfo import machine_info
    from deepatlas.train.runtime import evaluate_model, seed_everything

    if qat and qat_epochs < 1:
        raise UserError(f"--qat-epochs must be >= 1 with --qat, got {qat_epochs} (without "
                        "fine-tuning, QAT is post-training quantisation: drop --qat)")
    if not 0 <= seed < 2**32:
        raise UserError(f"--seed must be in [0, 2^32), got {seed}")

    if calibration < 1:
        raise UserError(f"--calibration must be >= 1 image, got {calibration}")
    source = find_checkpoint(run_or_file)
    state = load_checkpoint(source)
    model = model_from_checkpoint(state, "quantize")
    config = from_dict(state["config"])
    out = check_output(out or source.with_name(source.stem + "-int8.pt"), force, protect=source)
    report_path = check_output(out.with_suffix(".json"), force, protect=source)
    seed_everything(seed)
    data = data_for(describe(state, source))
    cpu = torch.device("cpu")
    calib = _calibration_batch(data, calibration, seed)
    test_loader = make_loader(data, "test", config.train.eval_batch_size, device=cpu)

    prepared = _prepare(copy.deepcopy(model), calib[:1], qat=False)
    with torch.inference_mode(), _quiet():
        for chunk in calib.split(256):
            prepared(chunk)  # observers record activation ranges
    ptq = _convert(prepared)
    quantized, method = ptq, "ptq"
    if qat:
        prepared_qat = _prepare(copy.deepcopy(model), calib[:1], qat=True)
        _fine_tune_qat(prepared_qat, data, config, qat_epochs, qat_lr, seed)
        quantized, method = _convert(prepared_qat), "qat"

    batch = next(iter(test_loader))[0].float()
    big = batch.repeat(math.ceil(256 / len(batch)), 1, 1, 1)[:256]  # (256, C, H, W)
    report: dict[str, Any] = {"source": str(source), "data": state["data"]["name"],
                              "out": str(out), "backend": BACKEND,
                              "method": method, "calibration_images": len(calib)}
    rows = {"fp32": model, "int8": quantized}
    if qat:
        rows["int8_ptq"] = ptq
    for name, module in rows.items():
        _, acc = evaluate_model(module, test_loader, cpu)
        report[name] = {"bytes": state_bytes(module), "test_acc": acc,
                        "latency_ms_batch1": latency_ms(module, big[:1], 50),
                        "latency_ms_batch256": latency_ms(module, big, 10)}
    fp32, int8 = report["fp32"], report["int8"]
    report["size_ratio"] = int8["bytes"] / fp32["bytes"]
    report["speedup_batch256"] = fp32["latency_ms_batch256"] / int8["latency_ms_batch256"]
    report["speedup_batch1"] = fp32["latency_ms_batch1"] / int8["latency_ms_batch1"]
    report["accuracy_drop"] = fp32["test_acc"] - int8["test_acc"]
    report["threads"] = torch.get_num_threads()
    report.update(machine_info(cpu))

    with _quiet():
        save_checkpoint({"format": INT8_FORMAT, "recipe": state["recipe"],
                         "config": state["config"], "data": state["data"],
                         "epoch": state.get("epoch"), "source": str(source), "qat": qat,
                         "backend": BACKEND, "model": quantized.state_dict()}, out)
    write_via_temp(report_path, lambda p: p.write_text(json.dumps(report, indent=2) + "\n"))
    return report


def load_quantized(state: dict[str, Any]) -> nn.Module:
    """Rebuild an INT8 model from its saved state: the float architecture from the config,
    the same fusion and observers, converted, then the saved integer weights and scales."""
    from deepatlas.models.saved import build_model

    model = build_model(state)
    meta = state["data"]
    example = torch.zeros(1, meta["in_channels"], meta["image_size"], meta["image_size"])
    prepared = _prepare(model, example, qat=state.get("qat", False))
    with torch.inference_mode(), _quiet():
        prepared.eval()(example)  # give observers a range so that convert can run
    quantized = _convert(prepared)
    with _quiet():
        quantized.load_state_dict(state["model"])
    return quantized.eval()
