"""One format for metrics in every command's output: shares as percent, the rest to 4 digits.

Light on purpose (no torch): ``deepatlas runs`` prints metrics and must stay instant.
"""

from __future__ import annotations

PERCENT_SUFFIXES = ("_acc", "_exact_match", "_coverage", "_mlm_acc")  # shares, as percentages


def format_metric(key: str, value: float) -> str:
    """``test_acc 97.50%``, ``test_bpc 1.785``."""
    if key.endswith(PERCENT_SUFFIXES):
        return f"{key} {value:.2%}"
    return f"{key} {value:.4g}"


def format_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(format_metric(k, v) for k, v in metrics.items())
