"""Models by name: ``create_model("resnet", depth=20, num_classes=10)``; see ``list_models()``."""

from deepatlas.models import (airbench, bert, cnn, gan, gpt, graph, mlp,  # noqa: F401
                              mobilenet, resnet, sequence, transformer, unet)  # (registers)
from deepatlas.models.registry import (create_model, list_models, model_kind, model_options,
                                       register_model)

__all__ = ["create_model", "list_models", "model_kind", "model_options", "register_model"]
