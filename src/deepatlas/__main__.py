"""``python -m deepatlas`` (and ``torchrun -m deepatlas``) run the CLI."""

from deepatlas.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
