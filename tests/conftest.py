import os
import sys
from pathlib import Path

import pytest

# `make test` runs two pytest-xdist workers on two cores. Each worker, and every process it
# starts, uses one thread: two workers with two OpenMP threads each would spin against each
# other and run several times slower than one.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).parent))

from deepatlas.cli.main import main  # noqa: E402

# Tests never reach for real data outside their own folders (but the `data`-marked ones, which
# read the real sets where `deepatlas data get` put them: REAL_DATA_ROOT).
REAL_DATA_ROOT = Path(os.environ.pop("DEEPATLAS_DATA", "") or Path.home() / ".cache" / "deepatlas")


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    from fakedata import make_mnist

    return make_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty $DEEPATLAS_DATA, and the data sets' pinned sha256 sums off: the tiny fake
    packages of tests/fakepackages.py build other files than the real ones."""
    import dataclasses

    from deepatlas.data.packages import SETS

    root = tmp_path / "cache"
    monkeypatch.setenv("DEEPATLAS_DATA", str(root))
    for name, spec in list(SETS.items()):
        monkeypatch.setitem(SETS, name, dataclasses.replace(spec, checksums={}))
    return root


# `make test` hands each pytest-xdist worker a whole file (--dist loadfile), in this order.
# The longest files go first, so that no worker is left running one of them alone at the end
# while the other sits idle (longest-processing-time-first scheduling). Measured with
# `pytest --durations=0` on 2 cores; a file not listed runs after these, in its usual order.
LONGEST_FIRST = ("test_lab.py", "test_faults.py", "test_every_recipe.py", "test_translation.py",
                 "test_every_recipe_more.py", "test_ddp.py", "test_speed.py", "test_speech.py",
                 "test_bad_input.py", "test_sequences.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole
