"""The hardware and versions recorded with every result."""

from __future__ import annotations

import json
import platform
import re
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


def write_result(out_dir: str | Path, name: str, result: dict[str, Any],
                 device: torch.device = torch.device("cpu")) -> Path:
    """Write ``result``, with the machine (``device`` and what it is) and versions, to
    ``out_dir/name-<where>.json`` (how every benchmark records what it measured): ``<where>``
    is the host's name, or on a GPU the GPU's (``NVIDIA H200`` -> ``h200``), so that one
    host's CPU and GPU results sit side by side."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    where = platform.node() or "machine"
    if device.type == "cuda":
        gpu = torch.cuda.get_device_name(device).lower().removeprefix("nvidia ")
        where = re.sub(r"[^a-z0-9]+", "-", gpu).strip("-")
    path = out / f"{name}-{where}.json"
    path.write_text(json.dumps({**result, **machine_info(device)}, indent=2) + "\n")
    return path
