"""Models by name: ``create_model("resnet", depth=20, num_classes=10)``; see ``list_models()``."""

from deepatlas.models import (airbench, alphafold, analog, bert, clip, cnn, detector, esrgan,  # noqa: F401
                              gan, gpt, graph, mlp, mobilenet, quantum, resnet, sequence,
                              simclr, snn, tacotron, transformer, unet)  # (registers them)
from deepatlas.models.registry import (create_model, list_models, model_kind, model_options,
                                       register_model)

__all__ = ["create_model", "list_models", "model_kind", "model_options", "register_model"]
