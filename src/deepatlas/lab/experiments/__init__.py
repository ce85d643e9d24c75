"""One module per experiment, in the order of the map; importing them registers them."""

from deepatlas.lab.experiments import (  # noqa: F401
    attention, backprop, batchnorm_clipping, batchnorm_formula, bert, compression, convolutions,
    curriculum, data_scaling, detection, early_stopping_augmentation, explanations, fairness,
    gan_stability, gpt, image_text, in_memory, initialisation, learned_features, model_scaling,
    optimisers, protein_structure, quantum,
    regularisation, residual_depth, segmentation, self_supervised, speech, spiking,
    super_resolution,
    translation, universal_approximation, vanishing_gradients)
