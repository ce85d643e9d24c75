"""Training (MAP 3, 5): the one Trainer, the Task interface, callbacks, checkpoints, DDP."""

from deepatlas.train.callbacks import Callback, EarlyStopping, ModelCheckpoint
from deepatlas.train.checkpoint import find_checkpoint, load_checkpoint
from deepatlas.train.runtime import autocast_dtype, evaluate_model
from deepatlas.train.task import Context, OptimizerGroup, StepOutput, Task
from deepatlas.train.trainer import Trainer

__all__ = ["Callback", "Context", "EarlyStopping", "ModelCheckpoint", "OptimizerGroup",
           "StepOutput", "Task", "Trainer", "autocast_dtype", "evaluate_model",
           "find_checkpoint", "load_checkpoint"]
