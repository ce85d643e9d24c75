"""Training (MAP 3, 5): the Trainer, its callbacks, checkpoints and DDP set-up."""

from deepatlas.train.callbacks import Callback, EarlyStopping, ModelCheckpoint
from deepatlas.train.checkpoint import find_checkpoint, inference_weights, load_checkpoint
from deepatlas.train.runtime import autocast_dtype, evaluate_model
from deepatlas.train.trainer import Trainer

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "Trainer", "autocast_dtype",
           "evaluate_model", "find_checkpoint", "inference_weights", "load_checkpoint"]
