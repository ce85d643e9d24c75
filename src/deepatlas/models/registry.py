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
_KINDS: dict[str, str] = {}  # "image" (input (B, C, H, W)) or "graph" (input x, edge_index)


def register_model(fn: Callable[..., nn.Module] | None = None, *, kind: str = "image"):
    """Register a factory under its function name (underscores become dashes); use as
    ``@register_model`` or ``@register_model(kind="graph")``."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = factory.__name__.replace("_", "-")
        _MODELS[name], _KINDS[name] = factory, kind
        return factory

    return wrap(fn) if fn is not None else wrap


def list_models(kind: str | None = None) -> list[str]:
    """Registered model names, all or those of one ``kind``."""
    return sorted(n for n in _MODELS if kind is None or _KINDS[n] == kind)


def model_kind(name: str) -> str:
    if name not in _MODELS:
        raise unknown_name("model", name, _MODELS)
    return _KINDS[name]


def model_options(name: str) -> dict[str, type]:
    """The options of model ``name`` (not the data's shape) and the type of each."""
    if name not in _MODELS:
        raise unknown_name("model", name, _MODELS)
    params = inspect.signature(_MODELS[name]).parameters.values()
    return {p.name: type(p.default) for p in params if p.name not in DATA_ARGS}


def check_model_options(name: str, values: dict[str, Any]) -> None:
    """The ranges every model declares by its options' types: an int option is a count
    (width, depth, heads, layers, ...) and must be >= 1; a float ``dropout`` is in [0, 1), a
    float whose default is 0 (a strength that may be off) is >= 0, and any other float option
    is > 0; ``heads`` must divide ``d_model``."""
    options = model_options(name)
    defaults = {p.name: p.default for p in inspect.signature(_MODELS[name]).parameters.values()}
    for key, value in values.items():
        kind = options.get(key)
        if kind is int and not isinstance(value, bool) and value < 1:
            raise UserError(f"model.{key} must be >= 1, got {value}")
        if kind is float and key == "dropout" and not 0 <= value < 1:
            raise UserError(f"model.dropout must be in [0, 1), got {value}")
        # A float whose default is 0 is a strength that may be off (train_noise); others > 0.
        if kind is float and key != "dropout" and defaults.get(key) == 0 and value < 0:
            raise UserError(f"model.{key} must be >= 0 (0 = off), got {value}")
        if kind is float and key != "dropout" and defaults.get(key) != 0 and not value > 0:
            raise UserError(f"model.{key} must be > 0, got {value}")
    if "heads" in options and "d_model" in options:
        heads, width = (values.get(k, defaults[k]) for k in ("heads", "d_model"))
        if isinstance(heads, int) and isinstance(width, int) and heads >= 1 and width % heads:
            raise UserError(f"model.d_model={width} must be a multiple of model.heads={heads}")


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build model ``name``; unknown options are a UserError that names the valid ones, and
    values out of range (:func:`check_model_options`) one that says the range."""
    options = model_options(name)
    for key in kwargs:
        if key not in options and key not in DATA_ARGS:
            raise UserError(
                f"model {name!r} has no option {key!r}{did_you_mean(key, options)}; "
                f"valid: {', '.join(options) or '(none)'}"
            )
    check_model_options(name, {k: v for k, v in kwargs.items() if k in options})
    try:
        return _MODELS[name](**kwargs)
    except ValueError as exc:  # a constraint of the architecture (ResNet's depth, say)
        raise UserError(f"model {name!r}: {exc}") from None
