"""Run configuration: dataclasses, TOML recipes and ``--set key=value`` overrides.

A recipe is a TOML file shipped in ``deepatlas/recipes``. Its tables map onto the dataclasses
below; ``[model]`` is the exception: ``model.name`` picks a registered model and the other keys
are that model's keyword arguments, checked against its signature. Every key and value is
validated here, so a typo or a wrong type is a one-line :class:`UserError`, not a traceback.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from deepatlas.config_checks import validate as validate_config
from deepatlas.config_tasks import (ClipConfig, ContactsConfig, DetectConfig, FairnessConfig,
                                    GanConfig, SimCLRConfig, SpeechConfig, UpscaleConfig)
from deepatlas.errors import UserError, did_you_mean, unknown_name


@dataclass
class DataConfig:
    name: str = "digits"  # a data source from deepatlas.data (see `deepatlas recipes`)
    dir: str = ""  # where the files are; "" searches $DEEPATLAS_DATA, then the Debian path
    download: bool = False  # let torchvision download MNIST/Fashion-MNIST/CIFAR when online
    augment: str = "none"  # none | flip | crop | crop-flip | source (MAP 5.2; data/augment.py)
    # | copy-paste | copy-paste-recolour | copy-paste-turn | copy-paste-recolour-turn (scene
    # tasks: fresh scenes every epoch; -recolour: on recoloured photographs; -turn: on
    # photographs turned by 90-degree steps and mirrored) | mosaic | mosaic-flip (scene tasks, any
    # scenes: YOLO's mosaic and scale, with left-right flips for the second; data/mosaic.py)
    more_photos: bool = False  # composed scene sets: also compose training scenes on
    # `photos-more` (13 photographs for training only; validation and test photographs stay
    # `photos`' own); a folder of your own images (yolo-folder, coco-json) has none to add to
    image_size: int = 224  # crop size for streamed sets (ImageNet); in-memory sets keep theirs
    train_size_start: int = 0  # progressive resizing: training crops grow from this size...
    train_size_end: int = 0  # ...to this one (FFCV: 160 -> 192, test at 224); 0 = off
    val_fraction: float = 0.1  # share of the training set held out (seeded) to choose best.pt
    train_examples: int = 0  # > 0: train on this many images only (a fixed, nested subset)
    num_workers: int = 2  # DataLoader workers for streamed sets
    tokenizer: str = "char"  # char | bpe: how text tasks cut text into tokens (MAP 6.2)
    vocab_size: int = 512  # bpe's vocabulary size, bytes and merges together
    in_domain_repeats: int = 1  # masked-lm: each rt-snippets training sentence k times an epoch


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adamw (torch) | sgd-plain | momentum | adam (deepatlas.optim)
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = True
    weight_decay: float = 5e-4  # applied to weights only, never to norms and biases
    beta1: float = 0.9  # AdamW
    beta2: float = 0.999  # AdamW
    layer_decay: float = 1.0  # sgd/adamw on a model with layer_depth(name) (BERT): the lr of a
    # parameter at depth k of K is lr * layer_decay^(K - k); 1 = the same lr everywhere


@dataclass
class ScheduleConfig:
    name: str = "cosine"  # cosine | onecycle | constant, stepped every batch
    warmup_epochs: float = 0.0  # linear warmup from 0 (cosine and constant)
    final_lr_fraction: float = 0.0  # cosine ends at lr * this


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128  # global batch: split over DDP processes
    eval_batch_size: int = 1024
    limit_train_batches: int = 0  # 0 = every batch; else at most this many batches an epoch
    limit_eval_examples: int = 0  # translation: decode only the first N held-out verses
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast; fp16 uses a GradScaler)
    channels_last: bool = False
    clip_grad_norm: float = 0.0  # 0 = off; applied after AMP unscale
    ema_decay: float = 0.0  # 0 = off; evaluate an exponential moving average of the weights
    ema_warmup_steps: int = 0  # 0: a fixed decay; else it ramps, decay·(1 − e^(−step/this))
    eval_every: int = 1  # evaluate every N epochs and after the last; 0 = after the last only
    tta: str = "none"  # none | flip | flip-translate: test on x and its mirror (and shifts)
    early_stopping_patience: int = 0  # epochs without improvement before stopping; 0 = off
    early_stopping_min_delta: float = 0.0
    monitor: str = "auto"  # validation metric for best.pt and early stopping; auto: the task's
    checkpoint_every_steps: int = 0  # also save last.pt every N steps (0: at epoch ends only)
    checkpoint_every_epochs: int = 1  # save last.pt every N epochs (and always after the last)
    deterministic: bool = False  # torch.use_deterministic_algorithms(True)
    init_from: str = ""  # start from a run or checkpoint: classify-text (BERT), upscale (ESRGAN)
    tensorboard: bool = True


@dataclass
class RegularizeConfig:
    label_smoothing: float = 0.0  # y~ = (1 - eps) y + eps / K  (MAP 3.3)
    mixup_alpha: float = 0.0  # 0 = off; lam ~ Beta(alpha, alpha)  (MAP 3.3)


@dataclass
class DistillConfig:
    teacher: str = ""  # a run directory or checkpoint whose soft targets teach (MAP 5.3); "" = off
    alpha: float = 0.5  # weight of the hard-label loss; 1 - alpha goes to the teacher's
    temperature: float = 4.0  # T: softens both distributions; the soft term is scaled by T^2


@dataclass
class RunConfig:
    recipe: str = "custom"
    description: str = ""
    task: str = "classify-images"  # see CHOICES["task"]
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=lambda: {"name": "mlp"})
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    regularize: RegularizeConfig = field(default_factory=RegularizeConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    upscale: UpscaleConfig = field(default_factory=UpscaleConfig)
    fairness: FairnessConfig = field(default_factory=FairnessConfig)
    simclr: SimCLRConfig = field(default_factory=SimCLRConfig)
    contacts: ContactsConfig = field(default_factory=ContactsConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS = ("data", "model", "optim", "schedule", "train", "regularize", "distill", "gan",
            "upscale", "fairness", "simclr", "contacts", "clip", "speech", "detect")
TOP_LEVEL = ("recipe", "description", "task", "seed")

CHOICES: dict[str, tuple[str, ...]] = {
    "task": ("classify-images", "classify-nodes", "seq2seq", "gan", "language-model",
             "translation", "masked-lm", "classify-text", "segment", "detect", "upscale",
             "debias", "simclr", "predict-contacts", "clip", "speak"),
    "data.tokenizer": ("char", "bpe"),
    "speech.symbols": ("phonemes", "characters"),
    "gan.loss": ("nonsaturating", "minimax", "wgan-gp"),
    "data.augment": ("none", "flip", "crop", "crop-flip", "source", "copy-paste",
                     "copy-paste-recolour", "copy-paste-turn", "copy-paste-recolour-turn",
                     "mosaic", "mosaic-flip"),
    "optim.name": ("sgd", "adamw", "sgd-plain", "momentum", "adam"),
    "schedule.name": ("cosine", "onecycle", "constant"),
    "train.precision": ("auto", "fp32", "bf16", "fp16"),
    "train.tta": ("none", "flip", "flip-translate"),
    "fairness.protected": ("sex", "race"),
    "fairness.constraint": ("equalized-odds", "demographic-parity"),
    "detect.assigner": ("centre", "task-aligned"),
}


# --------------------------------------------------------------------------- values and types


def parse_value(text: str) -> Any:
    """A ``--set`` value as TOML (``3``, ``0.1``, ``true``, ``"s"``), else the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _type_name(kind: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        kind, kind.__name__
    )


def coerce(key: str, value: Any, kind: type) -> Any:
    """``value`` as ``kind``, or a UserError naming the expected type."""
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    else:
        return value
    raise UserError(f"{key} expects {_type_name(kind)}, got {value!r}")


# --------------------------------------------------------------------------- building configs


def _section_fields(section: str) -> dict[str, type]:
    cls = {"data": DataConfig, "optim": OptimConfig, "schedule": ScheduleConfig,
           "train": TrainConfig, "regularize": RegularizeConfig, "distill": DistillConfig,
           "gan": GanConfig, "upscale": UpscaleConfig, "fairness": FairnessConfig,
           "simclr": SimCLRConfig, "contacts": ContactsConfig, "clip": ClipConfig,
           "speech": SpeechConfig, "detect": DetectConfig}[section]
    hints = {"str": str, "int": int, "float": float, "bool": bool}
    return {f.name: hints[f.type] if isinstance(f.type, str) else f.type
            for f in dataclasses.fields(cls)}


def valid_keys(model_name: str | None = None) -> list[str]:
    """Every dotted key a recipe or ``--set`` accepts (model keys for ``model_name``)."""
    keys = list(TOP_LEVEL)
    for section in SECTIONS:
        if section == "model":
            keys.append("model.name")
            if model_name is not None:
                from deepatlas.models import model_options

                keys += [f"model.{k}" for k in model_options(model_name)]
        else:
            keys += [f"{section}.{k}" for k in _section_fields(section)]
    return keys


def _unknown_key(key: str, model_name: str | None) -> UserError:
    keys = valid_keys(model_name)
    return UserError(
        f"unknown config key {key!r}{did_you_mean(key, keys)}; valid keys: {', '.join(keys)}"
    )


def set_key(config: RunConfig, key: str, value: Any) -> None:
    """Set a dotted key on ``config`` after checking the key, its type and its range."""
    if "." not in key:
        if key not in TOP_LEVEL:
            raise _unknown_key(key, config.model.get("name"))
        kind = {"recipe": str, "description": str, "task": str, "seed": int}[key]
        value = coerce(key, value, kind)
        if key in CHOICES and value not in CHOICES[key]:
            raise UserError(f"{key} must be one of {', '.join(CHOICES[key])}, got {value!r}")
        setattr(config, key, value)
        return
    section, name = key.split(".", 1)
    if section not in SECTIONS:
        raise _unknown_key(key, config.model.get("name"))
    if section == "model":
        _set_model_key(config, name, value)
        return
    fields = _section_fields(section)
    if name not in fields:
        raise _unknown_key(key, config.model.get("name"))
    value = coerce(key, value, fields[name])
    if key in CHOICES and value not in CHOICES[key]:
        raise UserError(
            f"{key} must be one of {', '.join(CHOICES[key])}, got {value!r}"
            f"{did_you_mean(value, CHOICES[key])}"
        )
    setattr(getattr(config, section), name, value)


def _set_model_key(config: RunConfig, name: str, value: Any) -> None:
    from deepatlas.models import list_models, model_options

    if name == "name":
        value = coerce("model.name", value, str)
        if value not in list_models():
            raise unknown_name("model", value, list_models())
        # A new model starts from its own defaults: options set for the old one do not carry.
        if value != config.model.get("name"):
            config.model = {"name": value}
        return
    options = model_options(config.model["name"])
    if name not in options:
        raise _unknown_key(f"model.{name}", config.model["name"])
    config.model[name] = coerce(f"model.{name}", value, options[name])


def _apply_table(config: RunConfig, table: dict[str, Any], prefix: str = "") -> None:
    # model.name first, so that the other model keys are checked against the right model.
    items = sorted(table.items(), key=lambda kv: not (prefix == "model." and kv[0] == "name"))
    for key, value in items:
        if isinstance(value, dict) and not prefix:
            if key not in SECTIONS:
                raise _unknown_key(key, config.model.get("name"))
            _apply_table(config, value, prefix=f"{key}.")
        else:
            set_key(config, prefix + key, value)


# --------------------------------------------------------------------------- recipes


def list_recipes() -> dict[str, str]:
    """Recipe name -> one-line description, for every recipe shipped in the package."""
    out = {}
    for entry in sorted(resources.files("deepatlas.recipes").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            table = tomllib.loads(entry.read_text(encoding="utf-8"))
            out[entry.name[: -len(".toml")]] = table.get("description", "")
    return out


def load_recipe(name: str, overrides: list[str] | None = None) -> RunConfig:
    """The recipe ``name`` (a shipped one, or a path to your own ``.toml``, validated the
    same way) with ``KEY=VALUE`` overrides applied and validated."""
    if name.endswith(".toml"):
        path = Path(name).expanduser()
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            raise UserError(f"no such recipe file: {name}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read the recipe {name}: {exc}") from None
        name = path.stem
    else:
        recipes = list_recipes()
        if name not in recipes:
            raise unknown_name("recipe", name, recipes)
        text = resources.files("deepatlas.recipes").joinpath(f"{name}.toml").read_text("utf-8")
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"recipe {name}: {exc} (TOML syntax)") from None
    config = from_dict(table)
    config.recipe = name
    apply_overrides(config, overrides or [])
    return config


def resume_config(out_dir: Path, recipe: str, overrides: list[str] | None = None) -> RunConfig:
    """The config a run in ``out_dir`` was started with, changed only by ``overrides``: a
    resumed run continues as it began (its own --set values included), not from the recipe's
    defaults."""
    saved = Path(out_dir) / "config.toml"
    if not saved.is_file():
        return load_recipe(recipe, overrides)  # the Trainer says there is nothing to resume
    try:
        table = tomllib.loads(saved.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"--resume: {saved} cannot be read ({exc}); it is the run's own "
                        "config, written by deepatlas train") from None
    if table.get("recipe") != recipe:
        raise UserError(f"--resume: {out_dir} is a run of recipe {table.get('recipe')!r}, not "
                        f"{recipe!r}; resume it with: deepatlas train {table.get('recipe')} "
                        f"--out {out_dir} --resume")
    config = from_dict(table)
    apply_overrides(config, overrides or [])
    return config


def apply_overrides(config: RunConfig, overrides: list[str]) -> None:
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set expects KEY=VALUE (for example train.epochs=5), got {item!r}")
        key, text = item.split("=", 1)
        set_key(config, key.strip(), parse_value(text.strip()))
    validate_config(config)


def from_dict(table: dict[str, Any]) -> RunConfig:
    """A RunConfig from a nested dict (a recipe, or the config saved in a checkpoint)."""
    config = RunConfig()
    _apply_table(config, table)
    validate_config(config)
    return config
