"""deepatlas: a runnable, tested and measured map of deep learning's core techniques.

The package mirrors ``MAP.md``: ``nn`` (layers and activations), ``models`` (a registry),
``data`` (data sources by name), ``train`` (one Trainer), ``cli`` (the ``deepatlas`` command).
"""

__version__ = "0.1.0"
