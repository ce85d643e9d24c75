"""Time and peak memory of ``deepatlas upscale`` from 960x540 to 3840x2160 (MAP 6.1, the
claim "ESRGAN restores 4K images").

    python benchmarks/upscale_4k.py [--run RUN] [--tiles 192 96 0] [--trials 2]
                                    [--out results/benchmarks]

Each trial runs the user's command, ``deepatlas upscale RUN in.png --out out.png --tile T``,
as its own process: the wall time is the whole command (start-up, loading, reading and
writing the images included), and the peak memory is that process's maximum resident set
size (``os.wait4``'s ``ru_maxrss``). The input is a real photograph, the first of the
``photos`` set in name order, resized to cover 960x540 and cropped to it.

Without ``--run`` a throwaway ``upscale-psnr`` run is trained for two batches first: the
time and the memory of a forward pass depend on the architecture (the recipe's RRDB), not on
what its weights have learnt. Run by hand, never by the tests; the result goes to
``results/benchmarks/upscale-4k-<host>.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from deepatlas.train.runinfo import write_result

LR_SIZE, SCALE = (960, 540), 4
RECIPE = "upscale-psnr"


def deepatlas(*args: str) -> list[str]:
    """The command line of ``deepatlas ARGS`` in this Python."""
    return [sys.executable, "-m", "deepatlas", *args]


def throwaway_run(folder: Path) -> Path:
    """The recipe's model, trained for two batches (its weights do not change the cost)."""
    run = folder / "run"
    subprocess.run(deepatlas("train", RECIPE, "--out", str(run), "--no-progress",
                             "--set", "train.epochs=1", "--set", "train.limit_train_batches=2",
                             "--set", "upscale.patches=64", "--set", "upscale.eval_images=1",
                             "--set", "train.tensorboard=false"), check=True,
                   stdout=subprocess.DEVNULL)
    return run


def input_photo(folder: Path) -> tuple[Path, str]:
    """A 960x540 crop of the first photograph of the ``photos`` set, resized to cover it."""
    from deepatlas.data.fetch import installed
    from deepatlas.data.packages import get_set

    photos = get_set("photos").folder()
    if not installed(photos):
        sys.exit("the photos set is not installed: deepatlas data get photos")
    source = sorted(p for p in photos.iterdir() if p.suffix.lower() in {".png", ".jpg"})[0]
    with Image.open(source) as img:
        img = img.convert("RGB")
        factor = max(LR_SIZE[0] / img.width, LR_SIZE[1] / img.height)
        img = img.resize((round(img.width * factor), round(img.height * factor)),
                         Image.Resampling.BICUBIC)
        left, top = (img.width - LR_SIZE[0]) // 2, (img.height - LR_SIZE[1]) // 2
        img = img.crop((left, top, left + LR_SIZE[0], top + LR_SIZE[1]))
    path = folder / "in.png"
    img.save(path)
    return path, source.name


def timed_upscale(run: Path, image: Path, out: Path, tile: int) -> tuple[float, float]:
    """(seconds, peak resident MiB) of one ``deepatlas upscale`` process."""
    start = time.perf_counter()
    proc = subprocess.Popen(deepatlas("upscale", str(run), str(image), "--out", str(out),
                                      "--tile", str(tile), "--force"),
                            stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"deepatlas upscale --tile {tile} failed (exit {code})")
    with Image.open(out) as big:
        if big.size != (LR_SIZE[0] * SCALE, LR_SIZE[1] * SCALE):
            sys.exit(f"the output is {big.size}, not {LR_SIZE[0] * SCALE}x{LR_SIZE[1] * SCALE}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="an upscale run (default: a throwaway one)")
    parser.add_argument("--tiles", type=int, nargs="+", default=[192, 96, 0],
                        help="tile sides in input px (0 = the whole image at once)")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run = args.run or throwaway_run(folder)
        image, source = input_photo(folder)
        rows = []
        for tile in args.tiles:
            trials = [timed_upscale(run, image, folder / "out.png", tile)
                      for _ in range(args.trials)]
            seconds, peaks = [t for t, _ in trials], [m for _, m in trials]
            rows.append({"tile": tile, "seconds_mean": statistics.mean(seconds),
                         "seconds": seconds, "peak_mib_max": max(peaks), "peak_mib": peaks})
            print(f"tile {tile or 'whole'}: {statistics.mean(seconds):.1f} s "
                  f"({', '.join(f'{s:.1f}' for s in seconds)}), peak {max(peaks):,.0f} MiB",
                  flush=True)
    path = write_result(args.out, "upscale-4k", {
        "recipe": RECIPE, "input": f"{LR_SIZE[0]}x{LR_SIZE[1]}", "scale": SCALE,
        "output": f"{LR_SIZE[0] * SCALE}x{LR_SIZE[1] * SCALE}", "photo": source,
        "weights": "a trained run" if args.run else "a throwaway run of 2 batches",
        "trials": args.trials, "rows": rows})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
