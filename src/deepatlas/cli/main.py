"""The ``deepatlas`` command: ``recipes``, ``train``, ``eval``, ``predict``, ``explain``,
``distill``, ``quantize``, ``export``, ``sample``, ``lab``, ``tour``.

Every user error ends as one line on stderr and exit code 2 (3 for a diverged run); a
traceback means a bug in deepatlas.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import os
import signal
import sys
import threading
import time
from pathlib import Path

from deepatlas.cli import compress as compress_cli
from deepatlas.cli import data as data_cli
from deepatlas.cli import evaluate as eval_cli
from deepatlas.cli import explain as explain_cli
from deepatlas.cli import search as search_cli
from deepatlas.cli import speak as speak_cli
from deepatlas.cli import superpose as superpose_cli
from deepatlas.cli import predict as predict_cli
from deepatlas.cli import runs as runs_cli
from deepatlas.cli import text as text_cli
from deepatlas.cli import upscale as upscale_cli
from deepatlas.errors import UserError


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a recipe", description="Train a recipe. Keys for "
                       "--set are dotted (train.epochs=5, optim.lr=0.05, model.width=64).")
    p.add_argument("recipe", help="a recipe name (see `deepatlas recipes`) or your own "
                                  "recipe file (path/to/recipe.toml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key; repeat for several")
    p.add_argument("--out", help="run directory (default runs/RECIPE/TIMESTAMP)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out with its "
                   "own saved config (--set changes only the keys it names)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--seed", type=int, help="shortcut for --set seed=N")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_recipes(args: argparse.Namespace) -> int:
    from deepatlas.config import list_recipes

    recipes = list_recipes()
    width = max(map(len, recipes))
    for name, description in recipes.items():
        print(f"{name:<{width}}  {description}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from deepatlas.config import load_recipe, resume_config
    from deepatlas.tasks import fit
    from deepatlas.formats import format_metric

    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    if args.resume and not args.out:
        raise UserError("--resume needs --out DIR: the run directory to continue")
    # A resumed run keeps its own config; --set changes only the keys it names.
    config = (resume_config(Path(args.out), args.recipe, overrides) if args.resume
              else load_recipe(args.recipe, overrides))
    out = Path(args.out) if args.out else Path("runs") / config.recipe / time.strftime(
        "%Y%m%d-%H%M%S")
    summary = fit(config, out, device=args.device, resume=args.resume,
                  progress=not args.no_progress)
    if os.environ.get("RANK", "0") != "0":
        return 0
    primary = summary["primary"]
    line = (f"{format_metric(primary, summary[primary])} after {summary['epochs']} epochs in "
            f"{summary['wall_s']:.1f} s on {summary['device']}")
    best = summary["best"]
    if summary["monitor"] and primary in best:
        line += (f"; best.pt is epoch {summary['best_monitored_epoch']} by "
                 f"{format_metric(summary['monitor'], best[summary['monitor']])}, with "
                 f"{format_metric(primary, best[primary])}")
    if "samples" in summary:
        line += f"; samples in {summary['samples']}"
    print(f"{line}; run written to {out}")
    return 0


def _check_lab_seed(seed: int) -> None:
    if not 0 <= seed < 2**32:  # numpy's generators take seeds in [0, 2^32)
        raise UserError(f"--seed must be in [0, 2^32), got {seed}")


def cmd_lab(args: argparse.Namespace) -> int:
    if args.lab_command == "list":  # from the catalog: no torch, so it answers at once
        from deepatlas.cli.catalog import read_catalog

        experiments = read_catalog()
        width = max(len(e["name"]) for e in experiments)
        for e in experiments:
            print(f"{e['name']:<{width}}  MAP {e['map_id']:<8} {e['claim']}")
        return 0
    from deepatlas.lab import run_experiment

    _check_lab_seed(args.seed)
    from deepatlas.lab import get_experiment
    from deepatlas.outputs import claim_out_dir

    exp = get_experiment(args.name)  # an unknown name: one line, before anything is written
    claim_out_dir(args.out, "a lab run or tour is writing there")  # held until we exit
    print(f"{exp.name} (MAP {exp.map_id}), {'quick' if args.quick else 'full'} size: "
          f"{exp.claim}", flush=True)
    record = run_experiment(args.name, args.out, quick=args.quick, seed=args.seed)
    folder = Path(args.out) / args.name
    qualifier = record["note"] or record["reason"]
    print(f"{record['id']} (MAP {record['map_id']}): {record['verdict']}"
          + (f" ({qualifier})" if qualifier else ""))
    print(record["details"])
    for effect in record["effects"]:
        print(f"  {effect['why']}")
    print(f"{record['wall_s']:.1f} s; wrote {folder / 'result.json'} and "
          f"{', '.join(str(folder / p) for p in record['plots'])}")
    return 0


def cmd_tour(args: argparse.Namespace) -> int:
    from deepatlas.errors import unknown_name
    from deepatlas.lab import list_experiments
    from deepatlas.lab.tour import run_tour

    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    _check_lab_seed(args.seed)
    names = [e.name for e in list_experiments()]
    for name in args.only or []:  # before anything is written
        if name not in names:
            raise unknown_name("experiment", name, names)
    from deepatlas.outputs import claim_out_dir

    claim_out_dir(args.out, "a lab run or tour is writing there")  # held until we exit
    summary = run_tour(args.out, quick=args.quick, seed=args.seed, only=args.only or None,
                       jobs=args.jobs)
    rows = summary["experiments"]
    width = max(len(r["id"]) for r in rows)
    print(f"\n{'experiment':<{width}}  {'MAP':<8} verdict")
    for r in rows:
        qualifier = r["note"] or r["reason"]
        print(f"{r['id']:<{width}}  {r['map_id']:<8} {r['verdict']}"
              + (f" ({qualifier})" if qualifier else ""))
    held = sum(r["verdict"] == "holds" for r in rows)
    print(f"\n{held} of {len(rows)} claims hold here ("
          + ", ".join(f"{n} {v}" for v, n in summary["verdicts"].items() if n)
          + f"); {summary['wall_s']:.0f} s in all. Open {Path(summary['page']).resolve()}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from deepatlas.tasks.gan_images import sample_grid

    print(f"wrote {sample_grid(args.checkpoint, args.n, args.out, args.seed, args.force)}")
    return 0


def _version() -> str:
    """deepatlas's version and torch's, without importing torch (which takes seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    from deepatlas import __version__

    try:
        torch = version("torch")
    except PackageNotFoundError:
        torch = "not installed"
    return f"deepatlas {__version__} (torch {torch}, Python {sys.version.split()[0]})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepatlas", description="A runnable map of deep "
                                     "learning: train recipes, evaluate and predict.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("recipes", help="list the recipes")
    _add_train(sub)
    eval_cli.add_parser(sub)
    predict_cli.add_parser(sub)
    explain_cli.add_parser(sub)
    upscale_cli.add_parser(sub)
    superpose_cli.add_parser(sub)
    search_cli.add_parser(sub)
    speak_cli.add_parser(sub)

    p = sub.add_parser("lab", help="the lab: one experiment per claim of the map")
    lab = p.add_subparsers(dest="lab_command", required=True)
    lab.add_parser("list", help="every experiment, its MAP id and the claim it tests")
    p = lab.add_parser("run", help="run one experiment")
    p.add_argument("name", help="an experiment (see `deepatlas lab list`)")
    p.add_argument("--quick", action="store_true", help="small settings (seconds to a minute)")
    p.add_argument("--out", default="runs/lab", help="folder for NAME/result.json and plots")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("tour", help="run every experiment and write the report page",
                       description="Run the lab's experiments in the map's order and write "
                       "OUT/index.html (open it from disk) and OUT/summary.json.")
    p.add_argument("--quick", action="store_true",
                   help="small settings: the whole tour in minutes on a laptop CPU")
    p.add_argument("--out", default="runs/tour", help="output folder (default runs/tour)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments")
    p.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                   help="experiments side by side (default: one per core, at most 4); those "
                        "that measure time always run alone")

    p = sub.add_parser("sample", help="draw images from a trained GAN generator")
    p.add_argument("checkpoint", help="a GAN run directory or its last.pt")
    p.add_argument("--n", type=int, default=64, help="how many images (default 64)")
    p.add_argument("--out", default="grid.png", help="the PNG grid to write")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise")

    p = sub.add_parser("distill", help="train a student recipe from a teacher's soft targets",
                       description="Knowledge distillation (MAP 5.3). The student recipe trains "
                       "with alpha * CE + (1 - alpha) * T^2 * KL(teacher || student); set "
                       "distill.alpha and distill.temperature with --set.")
    p.add_argument("--teacher", required=True, help="the teacher's run directory or checkpoint")
    p.add_argument("--student", required=True, help="the student's recipe")
    p.add_argument("--compare", action="store_true",
                   help="also train the student without a teacher (same seed and budget)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the student's recipe")
    p.add_argument("--out", help="run directory (default runs/STUDENT-distilled/TIMESTAMP)")
    p.add_argument("--seed", type=int, help="shortcut for --set seed=N")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("quantize", help="INT8 post-training quantisation for CPU inference",
                       description="Static INT8 quantisation (per-channel weights, x86 kernels), "
                       "calibrated on training images. Writes the INT8 model and a JSON report "
                       "of size, accuracy and latency, fp32 vs int8.")
    p.add_argument("run", help="a run directory or a checkpoint file")
    p.add_argument("--calibration", type=int, default=512, metavar="N",
                   help="training images to calibrate activation ranges on")
    p.add_argument("--out", help="where to write the INT8 model (default CHECKPOINT-int8.pt)")
    p.add_argument("--force", action="store_true",
                   help="overwrite --out (and its .json) if they exist; never a run's checkpoint")
    p.add_argument("--qat", action="store_true",
                   help="quantisation-aware fine-tuning, for models that lose accuracy in PTQ")
    p.add_argument("--qat-epochs", type=int, default=1, help="QAT fine-tuning epochs")
    p.add_argument("--seed", type=int, default=0, help="picks the calibration images")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser("export", help="export a trained model to pt2, ONNX or TorchScript",
                       description="Export for deployment; the file is read back and checked "
                       "against the PyTorch model (max |difference| <= 1e-4).")
    p.add_argument("run", help="a run directory or a checkpoint file")
    p.add_argument("--format", default="pt2",
                   choices=["pt2", "onnx", "torchscript", "safetensors"])
    p.add_argument("--out", help="output file (default CHECKPOINT.FORMAT)")
    p.add_argument("--force", action="store_true",
                   help="overwrite --out if it exists; never a run's checkpoint")
    text_cli.add_parsers(sub)
    data_cli.add_parser(sub)
    runs_cli.add_parser(sub)
    _show_defaults(parser)
    return parser


class _DefaultsFormatter(argparse.HelpFormatter):
    """argparse's ArgumentDefaultsHelpFormatter, without "(default: None)" noise and without
    repeating a default the help already states."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is False or default == []
                or default is argparse.SUPPRESS):
            return text
        if action.option_strings or action.nargs in ("?", "*"):
            text += " (default: %(default)s)"
        return text


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every --help shows each option's default, in every sub-command and sub-sub-command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                child.formatter_class = _DefaultsFormatter
                for option in child._actions:
                    if (option.help is None and option.option_strings
                            and option.default not in (None, argparse.SUPPRESS)
                            and option.default is not False):
                        option.help = "default: %(default)s"
                _show_defaults(child)


COMMANDS = {"runs": runs_cli.cmd_runs, "recipes": cmd_recipes, "train": cmd_train, "eval": eval_cli.cmd_eval,
            "predict": predict_cli.cmd_predict, "explain": explain_cli.cmd_explain,
            "upscale": upscale_cli.cmd_upscale, "superpose": superpose_cli.cmd_superpose,
            "search": search_cli.cmd_search, "speak": speak_cli.cmd_speak,
            "generate": text_cli.cmd_generate, "translate": text_cli.cmd_translate,
            "lab": cmd_lab, "tour": cmd_tour, "sample": cmd_sample,
            "distill": compress_cli.cmd_distill, "quantize": compress_cli.cmd_quantize,
            "export": compress_cli.cmd_export,
            "data": data_cli.cmd_data}


def run() -> int:
    """The console command (``deepatlas``, ``python -m deepatlas``): :func:`main`, plus the
    exit. A second Ctrl-C can land after the first has stopped a run cleanly, while this
    process reports it or shuts down; it then quits with 130 as it would mid-run, not with a
    traceback or killed by the signal (seen in CI as exit -2). This changes the process's
    SIGINT handling for good, so call :func:`main` from Python code, not this."""
    try:
        code = main()
    except KeyboardInterrupt:  # the second Ctrl-C, while main reported the first
        code = 130
    if threading.current_thread() is threading.main_thread():
        sys.stdout.flush()
        sys.stderr.flush()
        # While Python waits for threads: quit at once. From the exit handlers on, through
        # the interpreter's teardown (which resets Python-level handlers), ignore it; this
        # handler is registered last, so it runs first.
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
        atexit.register(signal.signal, signal.SIGINT, signal.SIG_IGN)
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"deepatlas: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("deepatlas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `deepatlas search ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except PermissionError as exc:  # an unreadable data folder, say: not a damaged download
        print(f"deepatlas: error: permission denied: {exc.filename or exc}; give this user "
              "read (and, for outputs, write) access, or choose another path", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"deepatlas: error: {exc.strerror}: {exc.filename or ''}; free some space or "
                  "choose another path (a run resumes with --resume)", file=sys.stderr)
            return 2
        if exc.filename is None:  # not about a path the user gave: a defect, shown whole
            raise
        # A path the system refused (read-only, under /proc, vanished): the user can act on it.
        print(f"deepatlas: error: cannot use {exc.filename}: {exc.strerror or exc}; choose "
              "another path", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(run())
