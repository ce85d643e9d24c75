"""Loading a trained text run (language model or translation) for the commands that use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from deepatlas.data.tokenize import Tokenizer, tokenizer_from_json
from deepatlas.models import create_model


def load_text_run(run_or_file: str | Path, task: str, refusal: str, *,
                  source_vocabulary: bool = False, num_classes: int | None = None,
                  image_input: bool = False) -> tuple[nn.Module, Tokenizer, dict[str, Any]]:
    """(model in eval mode with its inference weights, tokeniser, checkpoint) of a ``task``
    run; any other run is a UserError that ends with ``refusal``. The tokeniser's vocabulary
    sizes the output (or ``num_classes`` does) and, with ``source_vocabulary``, the input;
    with ``image_input`` (CLIP), the run's data ``image_size`` sizes the image input."""
    from deepatlas.models.saved import inference_weights, load_weights
    from deepatlas.train.checkpoint import load_run

    state, _ = load_run(run_or_file, task, refusal)
    tokenizer = tokenizer_from_json(state["data"]["tokenizer"])
    vocab = tokenizer.vocab_size
    options = {k: v for k, v in state["config"]["model"].items() if k != "name"}
    if source_vocabulary:
        options["in_channels"] = vocab
    if image_input:
        options["image_size"] = state["data"]["image_size"]
    model = create_model(state["config"]["model"]["name"], num_classes=num_classes or vocab,
                         **options)
    load_weights(model, inference_weights(state), state["config"]["model"])
    return model.eval(), tokenizer, state
