"""MAP 7.2: networks whose layers are memristor crossbars (``deepatlas.nn.crossbar``).

``analog-lenet`` (aihwkit's analog LeNet, the recipe's) and ``analog-mlp`` train like their
digital twins (with weight noise when ``train_noise`` > 0: hardware-aware training) and infer
through simulated PCM crossbars once programmed: ``program_model(model, seed)``, then
``set_inference_time(model, seconds, compensate)``. Biases, activations and pooling stay
digital, as on IBM's chips.
"""

from __future__ import annotations

from torch import nn

from deepatlas.errors import UserError
from deepatlas.models.registry import register_model
from deepatlas.nn.crossbar import AnalogConv2d, AnalogLinear


@register_model
def analog_mlp(*, in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
               width: int = 256, depth: int = 2, train_noise: float = 0.0) -> nn.Module:
    """``depth`` crossbar layers (``width`` hidden units, ReLU between); ``train_noise``: the
    weight noise of hardware-aware training, relative to each layer's max |w| (0 = off)."""
    layers: list[nn.Module] = [nn.Flatten()]
    features = in_channels * image_size * image_size
    for _ in range(depth - 1):
        layers += [AnalogLinear(features, width, train_noise), nn.ReLU()]
        features = width
    layers.append(AnalogLinear(features, num_classes, train_noise))
    return nn.Sequential(*layers)


@register_model
def analog_lenet(*, in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
                 train_noise: float = 0.0) -> nn.Module:
    """LeNet-5 on crossbars, in the shape of aihwkit's analog LeNet example (its MNIST
    anchor): two 5x5 convolutions of 16 and 32 channels, each with tanh and 2x2 max pooling,
    then 128 hidden units and the classes; every convolution and linear layer is a crossbar."""
    side = ((image_size - 4) // 2 - 4) // 2  # 28 -> 24 -> 12 -> 8 -> 4
    if side < 1:
        raise UserError(f"analog-lenet needs images of at least 16 px (two 5x5 convolutions "
                        f"and two poolings); got {image_size} px")
    return nn.Sequential(
        AnalogConv2d(in_channels, 16, 5, train_noise=train_noise), nn.Tanh(), nn.MaxPool2d(2),
        AnalogConv2d(16, 32, 5, train_noise=train_noise), nn.Tanh(), nn.MaxPool2d(2),
        nn.Flatten(),
        AnalogLinear(32 * side * side, 128, train_noise), nn.Tanh(),
        AnalogLinear(128, num_classes, train_noise))
