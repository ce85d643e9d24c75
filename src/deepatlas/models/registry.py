"""Models by name, the timm way: ``@register_model`` on a factory, ``create_model(name, ...)``.

A factory takes the data's shape as keyword arguments (``in_channels``, ``image_size``,
``num_classes``), filled in by the trainer, and its own options with defaults; those options
are exactly the ``model.*`` keys a recipe may set, with the type of their default.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from deepatlas.errors import UserError, did_you_mean, unknown_name

DATA_ARGS = ("in_channels", "image_size", "num_classes")

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its function name (underscores become dashes)."""
    _MODELS[fn.__name__.replace("_", "-")] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_MODELS)


def model_options(name: str) -> dict[str, type]:
    """The options of model ``name`` (not the data's shape) and the type of each."""
    if name not in _MODELS:
        raise unknown_name("model", name, _MODELS)
    params = inspect.signature(_MODELS[name]).parameters.values()
    return {p.name: type(p.default) for p in params if p.name not in DATA_ARGS}


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build model ``name``; unknown options are a UserError that names the valid ones."""
    options = model_options(name)
    for key in kwargs:
        if key not in options and key not in DATA_ARGS:
            raise UserError(
                f"model {name!r} has no option {key!r}{did_you_mean(key, options)}; "
                f"valid: {', '.join(options) or '(none)'}"
            )
    return _MODELS[name](**kwargs)
