"""The hardware and versions recorded with every result."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    info = {
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }
    try:  # the installed version, without importing torchvision (3 s)
        from importlib.metadata import version

        info["torchvision"] = version("torchvision")
    except ImportError:  # pragma: no cover - torchvision is a dependency
        pass
    return info


def write_result(out_dir: str | Path, name: str, result: dict[str, Any]) -> Path:
    """Write ``result``, with the machine and versions, to ``out_dir/name-<host>.json``
    (how every benchmark records what it measured)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{platform.node() or 'machine'}.json"
    path.write_text(json.dumps({**result, **machine_info(torch.device("cpu"))}, indent=2) + "\n")
    return path
