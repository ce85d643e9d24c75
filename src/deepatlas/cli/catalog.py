"""The lab's experiments (name, MAP id, claim) as a JSON file beside this module, so that
``deepatlas lab list`` answers at once instead of importing torch and every experiment;
``tests/test_lab.py`` keeps it equal to the registry.

    python -m deepatlas.cli.catalog   # rewrite lab_catalog.json from the registry
"""

from __future__ import annotations

import json
from pathlib import Path

CATALOG = Path(__file__).with_name("lab_catalog.json")


def registry_rows() -> list[dict[str, str]]:
    from deepatlas.lab import list_experiments

    return [{"name": e.name, "map_id": e.map_id, "claim": e.claim} for e in list_experiments()]


def read_catalog() -> list[dict[str, str]]:
    return json.loads(CATALOG.read_text("utf-8"))


if __name__ == "__main__":
    CATALOG.write_text(json.dumps(registry_rows(), indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {CATALOG}")
