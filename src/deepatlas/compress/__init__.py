"""Compression and deployment (MAP 5.3): knowledge distillation, INT8 quantisation, export.

- :mod:`deepatlas.compress.distill`   ``deepatlas distill``: a student taught by a teacher
- :mod:`deepatlas.compress.quantize`  ``deepatlas quantize``: post-training static INT8 (or QAT)
- :mod:`deepatlas.compress.fuse`      BatchNorm folded into the conv before it, for inference
- :mod:`deepatlas.compress.export`    ``deepatlas export``: ONNX, torch.export (.pt2), TorchScript
- :mod:`deepatlas.compress.modelfile` reads any of those files back for ``eval`` and ``predict``
"""
