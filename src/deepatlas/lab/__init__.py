"""The lab (MAP 1-5, 8): every claim of the map measured by an experiment.

``deepatlas lab list`` shows them, ``deepatlas lab run NAME`` runs one, ``deepatlas tour`` runs
them all and writes the report page. Each experiment is one short module here, registered with
:func:`deepatlas.lab.registry.experiment`; its verdict is computed from what it measured, and
every comparison through :mod:`deepatlas.lab.stats`.
"""

from deepatlas.lab import experiments  # noqa: F401  (registers the experiments)
from deepatlas.lab.registry import (EXPLAINED, REASONS, VERDICTS, Context, Experiment, Result,
                                    get_experiment, list_experiments, run_experiment)

__all__ = ["EXPLAINED", "REASONS", "VERDICTS", "Context", "Experiment", "Result",
           "get_experiment", "list_experiments", "run_experiment"]
