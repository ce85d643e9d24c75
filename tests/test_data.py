import gzip
import pickle

import numpy as np
import pytest
import torch

from deepatlas.data import augment_batch, load_data, make_loader
from deepatlas.data.augment import random_crop
from deepatlas.data.idx import read_idx
from deepatlas.errors import UserError
from fakedata import make_cifar, make_image_folder, make_mnist, write_idx


def test_digits_split_is_fixed_and_stratified():
    a, b = load_data("digits"), load_data("digits")
    assert (len(a.train), len(a.test)) == (1437, 360)
    assert torch.equal(a.test.images, b.test.images)
    assert a.train.images.dtype == torch.uint8 and a.train.images.max() == 255
    assert torch.bincount(a.test.labels).min() >= 35  # every digit about 36 times


def test_train_examples_are_nested_subsets_after_the_validation_split():
    full = load_data("digits", val_fraction=0.1)
    small, large = (load_data("digits", val_fraction=0.1, train_examples=n) for n in (100, 400))
    assert len(small.train) == 100 and len(large.train) == 400
    assert torch.equal(small.val.images, full.val.images)  # the held-out split never moves
    rows = {tuple(img.flatten().tolist()) for img in large.train.images}
    assert all(tuple(img.flatten().tolist()) in rows for img in small.train.images)
    with pytest.raises(UserError, match=r"more than the \d+ training images of digits"):
        load_data("digits", train_examples=10**6)


def test_binary_fashion_mnist_keeps_two_classes(tmp_path):
    from deepatlas.data.source import get_source

    folder = make_mnist(tmp_path / "fm", n_train=200, n_test=60)
    data = get_source("fashion-mnist-binary")(data_dir=str(folder))
    assert data.classes == ["T-shirt/top", "Trouser"] and data.num_classes == 2
    assert set(data.train.labels.tolist()) == {0, 1} and set(data.test.labels.tolist()) <= {0, 1}
    assert 0 < len(data.train) < 200


def test_mnist_reads_generated_idx_files(mnist_dir):
    data = load_data("mnist", data_dir=str(mnist_dir))
    assert data.train.images.shape == (200, 1, 28, 28) and len(data.test) == 60
    assert data.train.labels[:10].tolist() == list(range(10))
    assert data.classes == [str(d) for d in range(10)]


def test_fashion_mnist_reads_uncompressed_idx_too(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (12, 28, 28), dtype=np.uint8)
    labels = np.arange(12, dtype=np.uint8) % 10
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", images, compress=False)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", labels, compress=False)
    data = load_data("fashion-mnist", data_dir=str(tmp_path))
    assert torch.equal(data.train.images[:, 0], torch.from_numpy(images))
    assert data.classes[0] == "T-shirt/top" and data.num_classes == 10


def test_idx_with_wrong_magic_or_truncated_is_a_clear_error(tmp_path):
    path = write_idx(tmp_path / "x-idx3-ubyte", np.zeros((2, 4, 4), np.uint8))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(b"\x00\x00\x09\x99" + raw[4:]))
    with pytest.raises(UserError, match="magic 0x00000999, expected 0x00000803"):
        read_idx(path, 3)
    path.write_bytes(gzip.compress(raw[:-5]))
    with pytest.raises(UserError, match="truncated"):
        read_idx(path, 3)


@pytest.mark.parametrize("name, classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_reads_generated_pickles(tmp_path, name, classes):
    make_cifar(tmp_path, classes)
    data = load_data(name, data_dir=str(tmp_path))
    train_batches = 5 if classes == 10 else 1
    assert data.train.images.shape == (40 * train_batches, 3, 32, 32)
    assert len(data.test) == 40 and data.num_classes == classes
    assert data.classes[1] == "class1"


def test_cifar_refuses_a_pickle_that_runs_code(tmp_path):
    make_cifar(tmp_path, 10)

    class Evil:
        def __reduce__(self):
            return (eval, ("__import__('os').system('touch pwned')",))

    with (tmp_path / "cifar-10-batches-py" / "test_batch").open("wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(UserError, match="refusing to load builtins.eval"):
        load_data("cifar10", data_dir=str(tmp_path))
    assert not (tmp_path / "pwned").exists()


def test_imagenet_reads_an_image_folder(tmp_path):
    make_image_folder(tmp_path, classes=3, per_class=4)
    data = load_data("imagenet", data_dir=str(tmp_path), image_size=32)
    x, y = data.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert data.classes == ["n00000000", "n00000001", "n00000002"] and len(data.test) == 12


@pytest.mark.parametrize("name, fix", [
    ("mnist", "--set data.dir=FOLDER"),
    ("cifar10", "--set data.dir=FOLDER"),
    ("imagenet", "FOLDER/train/<class>/*.JPEG"),
])
def test_missing_data_says_what_fixes_it(tmp_path, monkeypatch, name, fix):
    monkeypatch.setattr("deepatlas.data.locate.DOWNLOAD_ROOT", tmp_path / "cache")
    with pytest.raises(UserError) as info:
        load_data(name)
    assert "not found" in str(info.value) and fix in str(info.value)


def test_missing_fashion_mnist_names_the_apt_command(tmp_path, monkeypatch):
    monkeypatch.setattr("deepatlas.data.locate.DOWNLOAD_ROOT", tmp_path / "cache")
    monkeypatch.setattr("deepatlas.data.idx.DEBIAN_FASHION", str(tmp_path / "none"))
    with pytest.raises(UserError, match="sudo apt-get install -y dataset-fashion-mnist"):
        load_data("fashion-mnist")
    with pytest.raises(UserError, match="data.dir=.*is not a folder"):
        load_data("fashion-mnist", data_dir=str(tmp_path / "nope"))


def test_random_crop_shifts_content_within_the_padding():
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.uint8).view(2, 1, 8, 8)
    out = random_crop(x, 1, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(2):  # each output is the input shifted by at most 1 px, zero-filled
        padded = torch.nn.functional.pad(x[i], (1, 1, 1, 1))
        assert any(torch.equal(out[i], padded[:, dy:dy + 8, dx:dx + 8])
                   for dy in range(3) for dx in range(3))


def test_flip_mirrors_about_half_the_batch():
    x = torch.randint(0, 255, (1000, 1, 4, 4), dtype=torch.uint8)
    out = augment_batch(x, "flip", torch.Generator().manual_seed(0))
    flipped = (out == x.flip(3)).flatten(1).all(1) & ~(out == x).flatten(1).all(1)
    assert 400 < flipped.sum() < 600


def test_ddp_shards_union_to_the_single_process_batches():
    """Rank 0 and 1 with batch B cover exactly the single-process batch of 2B, step by step."""
    data = load_data("digits")
    single = make_loader(data, "train", 64, seed=3)
    ranks = [make_loader(data, "train", 32, seed=3, rank=r, world_size=2) for r in (0, 1)]
    assert len(single) == len(ranks[0]) == len(ranks[1])
    for (xs, ys), (x0, y0), (x1, y1) in zip(single, *ranks):
        key = lambda x: sorted(map(tuple, x.flatten(1).tolist()))  # noqa: E731
        assert key(xs) == key(torch.cat([x0, x1]))


def test_eval_shards_cover_the_test_set_once():
    data = load_data("digits")
    counts = [sum(len(y) for _, y in make_loader(data, "test", 50, rank=r, world_size=3))
              for r in range(3)]
    assert sum(counts) == 360


def test_source_augmentation_is_the_texts_pipeline():
    from torchvision.transforms import v2

    from deepatlas.data.augment import source_pipeline

    steps = source_pipeline().transforms
    assert [type(t) for t in steps] == [v2.RandomHorizontalFlip, v2.ColorJitter, v2.RandomAffine]
    assert steps[1].brightness == (0.8, 1.2) and steps[1].contrast == (0.8, 1.2)
    assert steps[2].degrees == [-15.0, 15.0]
    torch.manual_seed(0)
    x = load_data("digits").train.images[:16]
    out = augment_batch(x, "source", torch.Generator())
    assert out.shape == x.shape and out.dtype == torch.uint8 and not torch.equal(out, x)


def test_tensor_batches_give_every_rank_the_same_steps_and_together_one_batch():
    """10 samples, 3 processes, batches of 2: each rank takes 1 step (a rank with 2 would
    wait forever in the gradient all-reduce), and a step's batches together are the first 6
    of the one-process order, each sample once."""
    from deepatlas.data.loaders import TensorBatches

    data = torch.arange(10)
    ranks = [TensorBatches(data, batch_size=2, seed=3, rank=r, world_size=3) for r in range(3)]
    assert [len(r) for r in ranks] == [1, 1, 1]
    steps = [list(r) for r in ranks]
    together = torch.cat([s[0] for s in steps])
    one = next(iter(TensorBatches(data, batch_size=6, seed=3)))
    assert sorted(together.tolist()) == sorted(one.tolist())
    assert len(TensorBatches(data, batch_size=2, seed=3)) == 5  # one process: unchanged
