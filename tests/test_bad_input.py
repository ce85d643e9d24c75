"""Bad input, one table: every command answers a bad path, value, image or a folder in use
with one actionable line and exit 2, no traceback, and leaves an existing run untouched.
The table is data: a new command joins it by adding rows."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-checkpoint",))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    from PIL import Image

    from deepatlas.cli.main import main
    from fakedata import make_mnist

    root = tmp_path_factory.mktemp("bad")
    run = root / "run"
    assert main(["train", "digits", "--out", str(run), "--set", "train.epochs=1",
                 "--no-progress"]) == 0
    bad_magic = make_mnist(root / "bad-magic", 20, 10)
    (bad_magic / "train-labels-idx1-ubyte.gz").write_bytes(
        __import__("gzip").compress(b"\x00\x00\x08\x03" + bytes(8)))
    truncated = make_mnist(root / "truncated", 20, 10)
    raw = __import__("gzip").decompress((truncated / "t10k-images-idx3-ubyte.gz").read_bytes())
    (truncated / "t10k-images-idx3-ubyte.gz").write_bytes(__import__("gzip").compress(raw[:500]))
    (root / "notes.png").write_text("not an image")
    Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "colour.png")
    half = root / "half.pt"
    half.write_bytes((run / "last.pt").read_bytes()[:5000])
    torch.save({"format": "deepatlas-checkpoint-v1", "model": RunsCode()}, root / "evil.pt",
               pickle_protocol=2)
    (root / "a-file").write_text("")
    atom = "ATOM  {:5d}  CA  ALA A{:4d}    {:8.3f}{:8.3f}{:8.3f}  1.00  0.00           C\n"
    (root / "one.pdb").write_text("".join(atom.format(k, k, 3.8 * k, 0, 0) for k in range(1, 9)))
    (root / "bad-xyz.pdb").write_text(atom.format(1, 1, 0, 0, 0)[:30] + "   x.yz" + " " * 40)
    (root / "broken.pdb.gz").write_bytes(b"\x1f\x8b not really gzip")
    packed = __import__("gzip").compress(atom.format(1, 1, 0, 0, 0).encode() * 200)
    (root / "damaged.pdb.gz").write_bytes(packed[:12] + bytes(40) + packed[52:])  # zlib.error
    (root / "model.cif").write_text("data_x\n")
    # Runs of other tasks, for the commands that only serve image classifiers.
    gan, seq = root / "gan", root / "seq"
    assert main(["train", "gan-dcgan", "--out", str(gan), "--no-progress", "--set",
                 "data.name=digits", "--set", f"gan.classifier={run}", "--set",
                 "train.epochs=1", "--set", "gan.fd_samples=64", "--set", "model.width=8",
                 "--set", "gan.discriminator_width=8", "--set", "train.tensorboard=false"]) == 0
    assert main(["train", "number-words", "--out", str(seq), "--no-progress", "--set",
                 "train.epochs=1", "--set", "train.batch_size=1800", "--set", "model.d_model=16",
                 "--set", "train.tensorboard=false"]) == 0
    # A folder another deepatlas process is writing: its lock is held for the whole module
    # (flock conflicts between two opens of the file, even within one process).
    from deepatlas.outputs import lock_folder

    held = root / "held"
    held.mkdir()
    lock = lock_folder(held, "the test holds it")
    yield {"root": root, "run": run, "bad_magic": bad_magic, "truncated": truncated,
           "gan": gan, "seq": seq, "held": held}
    os.close(lock)


BAD_INPUT = [
    # (arguments, words the one-line message must contain)
    (["train", "digitz"], "unknown recipe 'digitz' (did you mean 'digits'?)"),
    (["train", "digits", "--set", "train.epcohs=2"], "did you mean 'train.epochs'?"),
    (["train", "digits", "--set", "optimizer.lr=1"], "unknown config key 'optimizer.lr'"),
    (["train", "digits", "--set", "train.epochs=two"], "train.epochs expects an integer"),
    (["train", "digits", "--set", "optim.lr=abc"], "optim.lr expects a number"),
    (["train", "digits", "--set", "train.batch_size=5000"], "larger than the 1293 training"),
    (["train", "digits", "--resume"], "--resume needs --out DIR"),
    (["train", "digits", "--set", "model.name=vqc", "--set", "model.qubits=40"],
     "40 qubits need"),  # refused before the 2^40 amplitudes are allocated
    (["train", "digits", "--set", "model.name=snn-conv", "--set",
      "model.surrogate=sigmoidish"], "unknown surrogate gradient 'sigmoidish'"),
    (["train", "debias-adult", "--set", "fairness.protected=age"],
     "fairness.protected must be one of sex, race"),
    (["train", "debias-adult", "--set", "fairness.adversary_hidden=-4"],
     "fairness.adversary_hidden must be >= 0"),
    (["train", "digits", "--set", "data.train_examples=99999"], "more than the"),
    (["train", "digits", "--set", "train.deterministic=maybe"], "expects true or false"),
    (["train", "digits", "--set", "optim.lr=-0.1"], "optim.lr must be > 0"),
    (["train", "digits", "--set", "train.batch_size=0"], "train.batch_size must be >= 1"),
    (["train", "digits", "--set", "model.dropout=1"], "model.dropout must be in [0, 1)"),
    (["train", "digits", "--set", "model.dropout=-0.5"], "model.dropout must be in [0, 1)"),
    (["train", "digits", "--set", "regularize.label_smoothing=1.5"], "must be in [0, 1)"),
    (["train", "digits", "--set", "data.name=cifar"], "did you mean 'cifar10'?"),
    (["train", "digits", "--set", "model.name=resnet9000"], "unknown model 'resnet9000'"),
    (["train", "digits", "--set", "data.augment=rotate"], "data.augment must be one of"),
    (["train", "digits", "--set", "epochs"], "--set expects KEY=VALUE"),
    (["train", "mnist", "--set", "data.name=mnist", "--set", "data.dir={root}/missing"], "is not a folder"),
    (["train", "mnist", "--set", "data.name=mnist", "--set", "data.dir={root}/a-file"], "is not a folder"),
    (["train", "mnist", "--set", "data.name=mnist", "--set", "data.dir={bad_magic}"], "is not an IDX file"),
    (["train", "mnist", "--set", "data.name=mnist", "--set", "data.dir={truncated}"], "is truncated"),
    (["train", "digits", "--out", "{root}/a-file/run"], "cannot write to the output directory"),
    (["train", "digits", "--out", "{root}/nothing-here", "--resume"], "does not exist; drop "
                                                                       "--resume"),
    (["train", "digits", "--out", "{run}"], "already holds a run"),
    (["train", "digits", "--out", "{run}", "--resume", "--set", "model.name=cnn"],
     "differs from the config's"),
    (["train", "digits", "--out", "{run}", "--resume", "--set", "optim.name=sgd"],
     "the run used optim.name=adamw"),
    (["train", "digits", "--device", "cuda"] if not torch.cuda.is_available() else
     ["train", "digits", "--set", "train.eval_batch_size=0"], "cuda" if not
     torch.cuda.is_available() else "train.eval_batch_size must be >= 1"),
    (["train", "digits", "--set", "task=detection"], "task must be one of"),
    (["train", "gan-dcgan", "--set", "train.tta=flip"], "train.tta does nothing for task gan"),
    (["train", "karate-gcn", "--set", "data.augment=flip"],
     "data.augment does nothing for task classify-nodes"),
    (["train", "number-words", "--set", "gan.loss=minimax"],
     "gan.loss does nothing for task seq2seq"),
    (["train", "digits", "--set", "train.monitor=test_acc"],
     "would choose the model on the test set"),
    (["train", "karate-gcn", "--set", "train.early_stopping_patience=3"],
     "early stopping needs a validation split"),
    (["train", "digits", "--out", "{gan}", "--resume"], "is a run of recipe 'gan-dcgan'"),
    (["quantize", "{gan}"], "deepatlas quantize needs an image classifier; this is a gan run"),
    (["export", "{seq}"], "deepatlas export needs an image classifier; this is a seq2seq run"),
    (["eval", "{gan}"], "deepatlas eval needs an image classifier; this is a gan run"),
    (["predict", "{seq}", "{root}/colour.png"],
     "deepatlas predict needs an image classifier; this is a seq2seq run"),
    (["distill", "--teacher", "{seq}", "--student", "digits"],
     "deepatlas distill --teacher needs an image classifier"),
    (["sample", "{run}"], "is not a GAN run"),
    (["eval", "{root}/half.pt"], "truncated or corrupted"),
    (["eval", "{root}/evil.pt"], "was refused: it is not a plain-tensor checkpoint"),
    (["eval", "{root}/nope.pt"], "no such checkpoint file or run directory"),
    (["eval", "{root}"], "holds no checkpoint"),
    (["upscale", "{run}", "{root}/colour.png", "--out", "{root}/u.png"],
     "is not an upscale run (it is a classify-images run); deepatlas upscale needs one"),
    (["upscale", "{root}/nope", "{root}/colour.png", "--out", "{root}/u.png"],
     "no such checkpoint file or run directory"),
    (["upscale", "{root}/half.pt", "{root}/colour.png", "--out", "{root}/u.png"],
     "is truncated or corrupted"),
    (["upscale", "{run}", "{root}/colour.png", "--out", "{root}/u.gif"],
     "name a .png, .jpg"),
    (["upscale", "{run}", "{root}/colour.png", "--out", "{root}/u.png", "--tile", "-1"],
     "--tile must be >= 0"),
    (["train", "upscale-psnr", "--set", "upscale.patch=6"], "upscale.patch must be >= 8"),
    (["train", "digits", "--set", "data.augment=copy-paste"], "it is for tasks segment and detect"),
    (["train", "digits", "--set", "data.augment=copy-paste-recolour"],
     "data.augment=copy-paste-recolour draws new scenes every epoch: it is for tasks segment"),
    (["train", "digits", "--set", "data.more_photos=true"],
     "data.more_photos does nothing for task classify-images"),
    (["train", "detect-scenes", "--set", "data.name=yolo-folder"],
     "data.name=yolo-folder reads your own folder: set data.dir=DIR"),
    (["train", "segment-scenes", "--set", "data.name=yolo-folder"],
     "data set (data.name) for task segment"),
    (["train", "upscale-psnr", "--set", "upscale.l1_weight=0"], "and l1 or perceptual > 0"),
    (["train", "upscale-esrgan", "--set", "upscale.patch=8"], "use >= 16 with upscale.gan_weight"),
    (["train", "upscale-esrgan", "--set", "upscale.discriminator=rrdb"],
     "is not an upscale-critic model"),
    (["predict", "{run}", "{root}/notes.png"], "is not an image"),
    (["explain", "{run}", "{root}/notes.png"], "is not an image"),
    (["explain", "{run}", "{root}/colour.png", "--method", "shapp"],
     "unknown method 'shapp' (did you mean 'shap'?)"),
    (["explain", "{seq}", "{root}/colour.png"],
     "deepatlas explain needs an image classifier; this is a seq2seq run"),
    (["explain", "{run}", "{root}/colour.png", "--out", "{root}/notes.png"],
     "exists; pass --force"),
    (["explain", "{run}", "{root}/colour.png", "--target", "Trouser"],
     "unknown class 'Trouser'"),
    (["explain", "{run}", "{root}/colour.png", "--samples", "3"], "--samples must be >= 16"),
    (["explain", "{run}", "{root}/colour.png", "--samples", "20"],
     "--samples 20 cannot fit 64 patches of 1 px"),
    (["explain", "{run}", "{root}/colour.png", "--patch", "0"], "--patch must be in 1..8"),
    (["explain", "{run}", "{root}/colour.png", "--out", "{root}/colour.png", "--force"],
     "is the file this command reads"),
    (["train", "simclr-fashion", "--set", "simclr.temperature=0"],
     "simclr.temperature must be > 0"),
    (["train", "simclr-fashion", "--set", "model.name=resnet"],
     "does not fit task=simclr; its models: simclr-resnet"),
    (["train", "contacts-evoformer", "--set", "contacts.length=20"],
     "contacts.length must be >= 32 residues"),
    (["superpose", "{root}/notes.png"], "no CA atom in PDB format"),
    (["superpose", "{root}/broken.pdb.gz"], "broken.pdb.gz: cannot be read"),
    (["superpose", "{root}/bad-xyz.pdb"], "bad-xyz.pdb: bad coordinates in line"),
    (["superpose", "{root}/damaged.pdb.gz"], "damaged.pdb.gz: cannot be read"),
    (["superpose", "{root}/one.pdb"], "one.pdb has one model and no two copies of a chain"),
    (["superpose", "{root}/one.pdb", "{root}/one.pdb", "--chains", "A", "Q"], "no chain 'Q'"),
    (["superpose", "{root}/model.cif", "{root}/one.pdb"], "only PDB-format files are read"),
    (["superpose", "{root}/nope.pdb"], "nope.pdb is not a file"),
    (["search", "{root}/run", "a car", "--images", "{root}"], "is not a clip run"),
    (["search", "{root}/run", "  ", "--images", "{root}"], "empty query"),
    (["search", "{root}/run", "a car", "--images", "{root}/nope"], "nope is not a folder"),
    (["search", "{root}/run", "a car", "--images", "{root}", "--top", "0"], "--top must be >= 1"),
    (["speak", "{run}", "Good morning."], "is not a speak run"),
    (["speak", "{run}", " \n "], "empty text"),
    (["speak", "{run}", "Good morning.", "--out", "{root}/colour.png"], "exists; pass --force"),
    (["predict", "{run}", "{root}/missing.png"], "no such image file"),
    (["predict", "{root}/nope", "{root}/colour.png"], "no such checkpoint file or run directory"),
    # Never a lost file: a run's checkpoints are never written over; other files need --force.
    (["quantize", "{run}", "--out", "{run}/best.pt"], "is a checkpoint of a run"),
    (["quantize", "{run}", "--out", "{run}/last.pt", "--force"], "is a checkpoint of a run"),
    (["sample", "{gan}", "--out", "{root}/colour.png"], "exists; pass --force"),
    (["sample", "{gan}", "--n", "100000000"], "--n must be in [1, 4096]"),
    (["sample", "{gan}", "--seed", "-1"], "--seed must be in [0, 2^63)"),
    (["predict", "{run}", "{root}/colour.png", "--top", "0"], "--top must be >= 1"),
    (["export", "{root}/notes.png"], "is not a PyTorch checkpoint"),
    (["quantize", "{run}", "--qat", "--qat-epochs", "0"], "--qat-epochs must be >= 1"),
    (["tour", "--only", "gtp", "--out", "{root}/tour"], "unknown experiment 'gtp' (did you mean "
                                                       "'gpt'?)"),
    (["tour", "--seed", "-1", "--out", "{root}/tour"], "--seed must be in [0, 2^32)"),
    (["lab", "run", "gpt", "--seed", "-1", "--out", "{root}/lab"], "--seed must be in [0, 2^32)"),
    (["runs", "{root}/nope"], "is not a folder"),
    (["train", "digits", "--set", "model.width=-5"], "model.width must be >= 1, got -5"),
    (["train", "digits", "--set", "model.width=0"], "model.width must be >= 1, got 0"),
    (["train", "digits", "--set", "model.depth=0"], "model.depth must be >= 1"),
    (["train", "digits", "--set", "optim.beta1=1.5"], "optim.beta1 and optim.beta2 must be in"),
    (["train", "digits", "--seed", str(2**63)], "seed must be in [0, 2^32)"),
    (["train", "gpt-austen", "--set", "model.heads=3"], "must be a multiple of model.heads=3"),
    # Outputs that cannot be written: a file where a folder must be, a path under /proc.
    (["export", "{run}", "--format", "onnx", "--out", "{root}/a-file/m.onnx"],
     "cannot create the folder"),
    (["export", "{run}", "--format", "onnx", "--out", "/proc/deepatlas-m.onnx"], "cannot write"),
    (["export", "{run}", "--format", "onnx", "--out", "{root}"], "must end in .onnx"),
    (["quantize", "{run}", "--out", "{root}/a-file/q.pt"], "cannot create the folder"),
    (["quantize", "{run}", "--out", "/proc/deepatlas-q.pt"], "cannot use /proc/"),
    (["sample", "{gan}", "--out", "{root}/a-file/grid.png"], "cannot create the folder"),
    (["sample", "{gan}", "--out", "/proc/deepatlas-grid.png"], "/proc/"),
    (["lab", "run", "attention", "--out", "{root}/a-file/lab"], "cannot create the folder"),
    (["lab", "run", "attention", "--out", "/proc/deepatlas-lab"], "cannot create the folder"),
    (["tour", "--out", "{root}/a-file/tour"], "cannot create the folder"),
    # The text commands and data get, on runs and names they do not take.
    (["generate", "{run}", "--prompt", "hi"], "is not a language-model run"),
    (["generate", "{run}", "--prompt", "hi", "--max-tokens", "0"], "--max-tokens must be >= 1"),
    (["translate", "{run}", "hello"], "is not a translation run"),
    (["translate", "{root}/nope", "hello"], "no such checkpoint file or run directory"),
    (["data", "get", "nosuch"], "unknown data set 'nosuch'"),
    (["predict", "{run}", "{root}/colour.png", "--out", "{root}/m.png"],
     "--out is for segment and detect runs"),
    (["eval", "{run}", "--predictions", "{root}/p.json"], "--predictions writes a detector's"),
    # Concurrency: a folder another deepatlas process is writing.
    (["train", "digits", "--out", "{held}"], "is in use by another deepatlas process"),
    (["lab", "run", "attention", "--out", "{held}"], "is in use by another deepatlas process"),
    (["tour", "--quick", "--out", "{held}"], "is in use by another deepatlas process"),
]


def _hashes(folder) -> dict[str, str]:
    import hashlib

    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_one_line(cli, artifacts, args, message) -> None:
    """One line on stderr with ``message``, exit 2, no traceback, and nothing changed."""
    args = [a.format(**artifacts) for a in args]
    before = _hashes(artifacts["run"])
    code, out, err = cli(*args)
    assert _hashes(artifacts["run"]) == before  # nothing in the run changed
    assert code == 2, err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (artifacts["root"] / "pwned-by-checkpoint").exists()
    assert not (artifacts["root"] / "tour").exists() and not (artifacts["root"] / "lab").exists()


@pytest.mark.parametrize("args, message", BAD_INPUT, ids=[" ".join(a)[:60] for a, _ in BAD_INPUT])
def test_bad_input_is_one_actionable_line_and_exit_2(cli, artifacts, args, message, monkeypatch):
    monkeypatch.chdir(artifacts["root"])
    _assert_one_line(cli, artifacts, args, message)


def test_an_image_over_pils_decompression_bomb_limit_is_refused(cli, artifacts, monkeypatch):
    """PIL refuses images over twice ``MAX_IMAGE_PIXELS`` (about 179 megapixels); the limit is
    lowered here so that an 8x8 image stands in for a 200-megapixel one."""
    from PIL import Image

    monkeypatch.chdir(artifacts["root"])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    _assert_one_line(cli, artifacts, ["predict", "{run}", "{root}/colour.png"],
                     "colour.png was refused: Image size (64 pixels) exceeds limit")


def test_an_unreadable_data_folder_is_a_permission_error_not_damage(cli, artifacts, mnist_dir,
                                                                    monkeypatch):
    """Mode 000 does not stop root (which CI runs as), so the refusal is simulated where the
    IDX reader opens its files."""
    real = Path.read_bytes

    def refuse(path: Path) -> bytes:
        if str(path).startswith(str(mnist_dir)):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.chdir(artifacts["root"])
    monkeypatch.setattr(Path, "read_bytes", refuse)
    _assert_one_line(cli, artifacts, ["train", "mnist", "--set", "data.name=mnist", "--set",
                                             f"data.dir={mnist_dir}"],
                     "permission denied")


def _children(pid: int) -> list[int]:
    """The spawned worker processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its entry waits to be reaped


def test_sigterm_to_a_tour_stops_its_workers_too(tmp_path):
    """``kill PID`` of a tour used to leave its two workers training as orphans."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepatlas", "tour", "--quick", "--jobs", "2", "--only",
         "optimisers", "initialisation", "--out", str(tmp_path / "tour")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while len(workers := _children(proc.pid)) < 2:
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
        time.sleep(0.1)
    time.sleep(2)  # inside the experiments
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    assert "interrupted" in proc.stderr.read()
    deadline = time.time() + 10
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "the tour's workers outlived it"


def test_a_run_the_task_refuses_leaves_no_empty_folder(cli, tmp_path):
    """The run folder is created and locked before the task builds its model; when the build
    refuses the config, the folder it made for nothing is removed, and one it found stays."""
    args = ["train", "analog-mnist", "--set", "data.name=digits", "--set", "train.epochs=1"]
    code, _, err = cli(*args, "--out", str(tmp_path / "new"))
    assert code == 2 and "needs images of at least 16 px" in err and err.count("\n") == 1
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()  # empty, but the user's: it stays
    code, _, _ = cli(*args, "--out", str(tmp_path / "mine"))
    assert code == 2 and (tmp_path / "mine").is_dir()
