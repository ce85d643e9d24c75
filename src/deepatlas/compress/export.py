"""Export a trained classifier or detector for deployment (MAP 5.3, 6.1): ``deepatlas export
RUN --format F``. A detector (``detect`` run) exports as ``onnx`` or ``pt2``: input ``x``
(B, 3, S, S) normalised by its ``data.mean`` and ``data.std``, output (B, N, 4 + C) boxes in
pixels and class logits per anchor point, before NMS.

- ``pt2``: ``torch.export``, PyTorch's own whole-graph format (the recommended one); loads
  with ``torch.export.load(path).module()`` without deepatlas installed.
- ``onnx``: the ``torch.onnx`` dynamo exporter (needs ``onnxscript``); runs in onnxruntime.
- ``torchscript``: ``torch.jit.trace``, for older serving stacks. PyTorch has deprecated it;
  its notices are silenced here because the user asked for the format by name.
- ``safetensors``: the inference weights alone (no optimizer state, no pickle), with the
  description as metadata; deepatlas rebuilds the model from it. The Frechet distance of the
  GAN recipes reads its Fashion-MNIST classifier this way.

Every format keeps the batch dimension dynamic, carries the checkpoint's description (recipe,
config, classes, normalisation) and is checked after writing: the file is read back and its
outputs compared with the PyTorch model's on real test images (random ones for a detector):
max |difference| <= 1e-4 of the outputs' largest magnitude.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepatlas.errors import UserError

FORMATS = ("pt2", "onnx", "torchscript", "safetensors")
TOLERANCE = 1e-4


def _export_pt2(model: nn.Module, example: torch.Tensor, path: Path, meta: str) -> None:
    from deepatlas.models.saved import META_NAME

    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path), extra_files={META_NAME: meta})


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, meta: str) -> None:
    """``model`` as ONNX at ``path`` (batch dynamic, the rest of ``example``'s shape fixed),
    with the description ``meta`` in its metadata."""
    from deepatlas.models.saved import META_NAME

    try:
        import onnx
        import onnxscript  # noqa: F401  the dynamo exporter needs it
    except ImportError:
        raise UserError("ONNX export needs the onnx and onnxscript packages (and onnxruntime "
                        "to check the result): pip install onnxscript onnxruntime, or "
                        "pip install 'deepatlas[export]'") from None
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.onnx.export(model, (example,), dynamo=True, verbose=False,
                                input_names=["x"], output_names=["logits"],
                                dynamic_shapes=({0: batch},))
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_NAME, meta
    onnx.save(proto, str(path))


def _export_torchscript(model: nn.Module, example: torch.Tensor, path: Path, meta: str) -> None:
    from deepatlas.models.saved import META_NAME

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notices
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(path), _extra_files={META_NAME: meta})


def _export_safetensors(model: nn.Module, example: torch.Tensor, path: Path, meta: str) -> None:
    from safetensors.torch import save_file

    from deepatlas.models.saved import META_NAME

    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(path), metadata={META_NAME: meta})


WRITERS = {"pt2": _export_pt2, "onnx": export_onnx, "torchscript": _export_torchscript,
           "safetensors": _export_safetensors}


def export_model(run_or_file: str | Path, fmt: str = "pt2", out: str | Path | None = None,
                 force: bool = False) -> dict[str, Any]:
    """Write ``run_or_file``'s inference model as ``fmt``, read it back, and return where it
    went and the largest output difference from the PyTorch model on 64 test images."""
    from deepatlas.compress.modelfile import read_model_file
    from deepatlas.models.saved import describe, model_from_checkpoint
    from deepatlas.outputs import check_output, write_via_temp
    from deepatlas.train.checkpoint import find_checkpoint, load_checkpoint

    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    source = find_checkpoint(run_or_file)
    state = load_checkpoint(source)
    detector = state.get("task") == "detect"
    if detector and fmt not in ("onnx", "pt2"):
        raise UserError(f"a detect run exports as onnx or pt2 (a whole graph that runs without "
                        f"deepatlas), not {fmt}")
    model = _saved_detector(state) if detector else model_from_checkpoint(state, "export")
    meta = describe(state, source)
    out = Path(out) if out else source.with_name(f"{source.stem}.{fmt}")
    if out.suffix != f".{fmt}":
        raise UserError(f"--out for --format {fmt} must end in .{fmt} (eval and predict tell "
                        f"formats apart by it), got {out}")
    out = check_output(out, force, protect=source)
    images = _check_images(state, meta)  # (n, C, H, W), as the model reads them
    with torch.inference_mode():
        expected = model(images)  # (n, K); a detector's (n, N, 4 + C)
    # Written beside the target and renamed: a failed export leaves no truncated file.
    write_via_temp(out, lambda tmp: WRITERS[fmt](model, images[:2], tmp, json.dumps(meta)))
    loaded = read_model_file(out)
    with torch.inference_mode():
        got = loaded.module(images)
    # relative to the outputs' scale: a detector's boxes are in pixels, up to the image side
    error = (got.float() - expected).abs().max().item() / max(1.0, expected.abs().max().item())
    if error > TOLERANCE:
        raise UserError(f"{out} was written, but its outputs differ from the PyTorch model's by "
                        f"{error:.2e} (> {TOLERANCE}); do not deploy it, and please report this")
    return {"source": str(source), "out": str(out), "format": fmt, "bytes": out.stat().st_size,
            "max_abs_error": error, "checked_images": len(images)}


def _check_images(state: dict[str, Any], meta: dict[str, Any]) -> torch.Tensor:
    """What an export is checked on: 64 real test images for a classifier; for a detector,
    16 random images normalised as its inputs are (its scenes are composed, not stored)."""
    if state.get("task") == "detect":
        size = state["data"]["image_size"]
        return torch.randn(16, 3, size, size, generator=torch.Generator().manual_seed(0))
    from deepatlas.data import make_loader
    from deepatlas.tasks.classify_images import data_for

    return next(iter(make_loader(data_for(meta), "test", 64, num_workers=0)))[0].float()


def _saved_detector(state: dict[str, Any]) -> nn.Module:
    """A detect run's model with its inference weights, in eval mode."""
    from deepatlas.models.saved import saved_model

    data = state["data"]
    return saved_model(state, in_channels=3, image_size=data["image_size"],
                       num_classes=len(data["classes"]))
