"""Every file a model can live in, read back the same way for ``deepatlas eval`` / ``predict``.

===========  =================================  ==========================================
kind         written by                         read with
===========  =================================  ==========================================
checkpoint   ``deepatlas train`` (``*.pt``)     ``torch.load(weights_only=True)``
int8         ``deepatlas quantize`` (``*.pt``)  ``torch.load(weights_only=True)``, rebuilt
pt2          ``deepatlas export --format pt2``  ``torch.export.load``
onnx         ``deepatlas export --format onnx`` onnxruntime
torchscript  ``... --format torchscript``       ``torch.jit.load``
safetensors  ``... --format safetensors``       safetensors, rebuilt from the config
===========  =================================  ==========================================

Each file carries the same description (recipe, config, classes, normalisation) as a
checkpoint: inside the dict, as ``deepatlas.json`` in the archive, or as ONNX metadata.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepatlas.errors import UserError
from deepatlas.models.saved import META_NAME, describe, model_from_checkpoint, read_safetensors

SUFFIXES = {".onnx": "onnx", ".pt2": "pt2", ".torchscript": "torchscript",
            ".safetensors": "safetensors"}


@dataclass
class LoadedModel:
    """A model read from any of the files above. ``module`` maps normalised images
    (B, C, H, W) to logits (B, K); exported and INT8 models run on the CPU only."""

    path: Path
    kind: str
    meta: dict[str, Any]  # "recipe", "config" (dict), "data" (classes, mean, std, ...)
    module: nn.Module

    @property
    def cpu_only(self) -> bool:
        return self.kind not in ("checkpoint", "safetensors")


class _Runner(nn.Module):
    """A fixed inference function behind the nn.Module call convention. It is not a child
    module, so ``.eval()`` (which an exported program refuses) never reaches it."""

    def __init__(self, fn) -> None:
        super().__init__()
        object.__setattr__(self, "fn", fn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, K)
        return self.fn(x)


def _onnx_runner(path: Path) -> tuple[_Runner, Any]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        (logits,) = session.run(None, {name: x.float().contiguous().numpy()})
        return torch.from_numpy(logits)

    return _Runner(run), session


def load_model_file(run_or_file: str | Path, command: str = "this command") -> LoadedModel:
    """Read a run directory, a checkpoint, an INT8 file or an exported image classifier (an
    exported detector is refused: ``command`` serves classifiers)."""
    loaded = read_model_file(run_or_file, command)
    task = loaded.meta.get("config", {}).get("task", "classify-images")
    if task != "classify-images":
        raise UserError(f"{loaded.path} is an exported {task} model; deepatlas {command} "
                        f"reads it from its run folder, and the file runs in onnxruntime or "
                        "torch.export without deepatlas")
    return loaded


def read_model_file(run_or_file: str | Path, command: str = "this command") -> LoadedModel:
    """Read a run directory, a checkpoint, an INT8 file or an exported model of any task."""
    from deepatlas.train.checkpoint import find_checkpoint

    path = find_checkpoint(run_or_file)
    kind = SUFFIXES.get(path.suffix)
    try:
        if kind == "onnx":
            return _load_onnx(path)
        if kind == "pt2":
            extra = {META_NAME: ""}
            program = torch.export.load(str(path), extra_files=extra)
            return LoadedModel(path, kind, json.loads(extra[META_NAME]),
                               _Runner(program.module()))
        if kind == "torchscript":
            extra = {META_NAME: ""}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
                module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
            return LoadedModel(path, kind, json.loads(extra[META_NAME]), module.eval())
        if kind == "safetensors":
            return _load_safetensors(path)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001  each reader raises its own types
        raise UserError(f"{path} could not be read as a {kind} model ({type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''})"
                        ) from None
    return _load_pt(path, command)


def _load_onnx(path: Path) -> LoadedModel:
    try:
        module, session = _onnx_runner(path)
    except ImportError:
        raise UserError("reading ONNX models needs onnxruntime: pip install onnxruntime "
                        "(or pip install 'deepatlas[export]')") from None
    meta = session.get_modelmeta().custom_metadata_map.get(META_NAME)
    if meta is None:
        raise UserError(f"{path} has no '{META_NAME}' metadata: export it with "
                        "`deepatlas export RUN --format onnx`")
    return LoadedModel(path, "onnx", json.loads(meta), module)


def _load_safetensors(path: Path) -> LoadedModel:
    meta, model = read_safetensors(path)
    return LoadedModel(path, "safetensors", meta, model)


def _load_pt(path: Path, command: str) -> LoadedModel:
    from deepatlas.compress.quantize import INT8_FORMAT, load_quantized
    from deepatlas.train.checkpoint import FORMAT, load_checkpoint

    state = load_checkpoint(path, formats=(FORMAT, INT8_FORMAT))
    if state["format"] == INT8_FORMAT:
        return LoadedModel(path, "int8", describe(state, state["source"]), load_quantized(state))
    return LoadedModel(path, "checkpoint", describe(state, path), model_from_checkpoint(state, command))
