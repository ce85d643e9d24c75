"""Models rebuilt from a saved state: a checkpoint, an INT8 file's description or an exported
file's metadata. Everything that reads a trained image classifier (eval, predict, quantize,
export, a distillation teacher, the GAN's judge) builds it here."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepatlas.errors import UserError
from deepatlas.models.registry import create_model


def inference_weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights to predict with: the EMA's when the run kept one, else the model's."""
    ema = state.get("ema")
    if ema:
        return {k[len("module."):]: v for k, v in ema.items() if k.startswith("module.")}
    return state["model"]


def saved_model(state: dict[str, Any], **data_args: Any) -> nn.Module:
    """Any task's model from a saved state: ``config.model`` built with ``data_args`` (the
    data's shape: in_channels, image_size, num_classes), its inference weights, eval mode."""
    options = {k: v for k, v in state["config"]["model"].items() if k != "name"}
    model = create_model(state["config"]["model"]["name"], **data_args, **options)
    load_weights(model, inference_weights(state), state["config"]["model"])
    return model.eval()


def build_model(state: dict[str, Any], command: str = "this command") -> nn.Module:
    """The untrained image classifier a saved state's config and data shape describe."""
    config, meta = state["config"], state["data"]
    task = config.get("task", "classify-images")
    if task != "classify-images":
        raise UserError(f"deepatlas {command} needs an image classifier; this is a {task} run "
                        "(its results are in its summary.json and metrics.jsonl)")
    options = {k: v for k, v in config["model"].items() if k != "name"}
    return create_model(config["model"]["name"], in_channels=meta["in_channels"],
                        image_size=meta["image_size"], num_classes=len(meta["classes"]),
                        **options)


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor],
                 described: Any) -> None:
    """``model.load_state_dict(weights)``, or one line naming the model ``described`` when
    they do not fit (a checkpoint from before a model changed, e.g. CLIP's ViT gaining
    ``ln_pre``): a traceback tells the user nothing they can act on."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise UserError(f"the checkpoint's weights do not fit model {described}: "
                        f"{str(exc).splitlines()[0]} (a checkpoint from an older deepatlas "
                        "whose model has since changed: train it again)") from None


def model_from_checkpoint(state: dict[str, Any], command: str = "this command"
                          ) -> nn.Module:
    """The image classifier a checkpoint describes, with its inference weights, in eval mode."""
    model = build_model(state, command)
    load_weights(model, inference_weights(state), state["config"]["model"])
    return model.eval()


def describe(state: dict[str, Any], source: Any) -> dict[str, Any]:
    """The description every exported or INT8 file carries, from a training checkpoint."""
    return {"recipe": state["recipe"], "config": state["config"], "data": state["data"],
            "epoch": state.get("epoch"), "source": str(source)}


META_NAME = "deepatlas.json"  # the description's name inside exported archives and ONNX files


def read_safetensors(path: Any) -> tuple[dict[str, Any], nn.Module]:
    """(description, image classifier) of a ``deepatlas export --format safetensors`` file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = (f.metadata() or {}).get(META_NAME)
        if meta is None:
            raise UserError(f"{path} has no '{META_NAME}' metadata: write it with "
                            "`deepatlas export RUN --format safetensors`")
        weights = {k: f.get_tensor(k) for k in f.keys()}
    import json

    meta = json.loads(meta)
    return meta, model_from_checkpoint({"config": meta["config"], "data": meta["data"],
                                        "model": weights})
