"""``python -m deepatlas`` (and ``torchrun -m deepatlas``) run the CLI."""

from deepatlas.cli.main import run

if __name__ == "__main__":
    raise SystemExit(run())
