"""One statistics helper for every comparative verdict of the lab.

An experiment that claims "A beats B" runs both over several seeds and hands the two lists to
:func:`compare`; one that claims "A learns" hands its values and the chance level to
:func:`against`; one scored on many test items of a single run hands the counts to
:func:`proportion`. Each returns an :class:`Effect`: the mean effect in the claim's units, its
two-sided 95% confidence interval, the number of seeds, the method, and a decision:

- ``"supports"``: the interval excludes zero on the side the claim predicts (a two-sided 95%
  interval, so a one-sided test at 2.5%);
- ``"contradicts"``: the interval excludes zero on the other side;
- ``"undecided"``: the interval includes zero, or there are fewer than ``min_seeds`` seeds
  (two seeds give a t interval with one degree of freedom, 12.7 standard errors wide at 95%,
  which decides nothing but the largest effects; three is the least we judge on).

The intervals are scipy's: Student's t on the paired differences when the two lists share
their seeds (the same seed gives both arms the same initialisation and batch order, so the
pair differences cancel that noise), Welch's t when they do not, the one-sample t against a
fixed level, and the Wilson score interval for a proportion. When every difference is the same
number (zero spread), the interval is that number: the seeds agree exactly.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

CONFIDENCE = 0.95
MIN_SEEDS = 3


@dataclass(frozen=True)
class Effect:
    """``effect`` = mean(a) - mean(b) (or mean(values) - level), with its interval."""

    name: str  # what is compared, e.g. "dropout - none, test accuracy"
    effect: float
    low: float
    high: float
    seeds: int  # seeds per arm (pairs for a paired test); test items for a proportion
    method: str
    direction: str  # the claim's side: "greater" (effect > 0) or "less" (effect < 0)
    p_value: float
    min_seeds: int = MIN_SEEDS
    confidence: float = CONFIDENCE
    judged: bool = True  # False: shown with the evidence, not part of the verdict
    unit: str = "seeds"  # what the samples are: seeds, or test images for a fixed model

    @property
    def decision(self) -> str:
        if self.seeds < self.min_seeds:
            return "undecided"
        if (self.low > 0 and self.direction == "greater") or (
                self.high < 0 and self.direction == "less"):
            return "supports"
        if (self.low > 0 and self.direction == "less") or (
                self.high < 0 and self.direction == "greater"):
            return "contradicts"
        return "undecided"

    @property
    def why(self) -> str:
        """One line: the effect, its interval, the seeds, and what that decides."""
        if self.seeds < self.min_seeds:
            reason = (f"too few {self.unit} to decide ({self.seeds} < {self.min_seeds})")
        elif self.decision == "undecided":
            reason = f"the interval includes 0: not decided at this number of {self.unit}"
        else:
            reason = self.decision
        return (f"{self.name}: {self.effect:+.4g} [{self.low:+.4g}, {self.high:+.4g}], "
                f"{self.seeds} {'items' if 'Wilson' in self.method else self.unit}, "
                f"{self.method}: {reason}")

    def as_dict(self) -> dict:
        return {**asdict(self), "decision": self.decision, "why": self.why}


def _check(direction: str) -> None:
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")


def _finite(x: float) -> float:
    return float(x) if math.isfinite(x) else float("nan")


def compare(name: str, a: Sequence[float], b: Sequence[float], *, direction: str = "greater",
            paired: bool = True, min_seeds: int = MIN_SEEDS,
            confidence: float = CONFIDENCE, judged: bool = True, unit: str = "seeds") -> Effect:
    """mean(a) - mean(b) over seeds, with a paired t interval (``paired``: a[i] and b[i] share
    seed i) or Welch's. ``direction`` is the side the claim predicts; ``unit`` names what the
    samples are when they are not seeds (the test images of one fixed model)."""
    from scipy import stats

    _check(direction)
    a, b = [float(v) for v in a], [float(v) for v in b]
    if paired and len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    effect = statistics.fmean(a) - statistics.fmean(b)
    n = min(len(a), len(b))
    if paired:
        diffs = [x - y for x, y in zip(a, b)]
        if n < 2 or len(set(diffs)) == 1:
            return Effect(name, effect, effect, effect, n, "paired t (no spread)", direction,
                          0.0 if effect else 1.0, min_seeds, confidence, judged, unit)
        test = stats.ttest_rel(a, b)
        method = "paired t"
    else:
        if n < 2 or (len(set(a)) == 1 and len(set(b)) == 1):
            return Effect(name, effect, effect, effect, n, "Welch t (no spread)", direction,
                          0.0 if effect else 1.0, min_seeds, confidence, judged, unit)
        test = stats.ttest_ind(a, b, equal_var=False)
        method = "Welch t"
    ci = test.confidence_interval(confidence_level=confidence)
    return Effect(name, effect, _finite(ci.low), _finite(ci.high), n, method, direction,
                  _finite(test.pvalue), min_seeds, confidence, judged, unit)


def against(name: str, values: Sequence[float], level: float, *, direction: str = "greater",
            min_seeds: int = MIN_SEEDS, confidence: float = CONFIDENCE,
            judged: bool = True, unit: str = "seeds") -> Effect:
    """mean(values) - ``level`` (a chance floor, say), with the one-sample t interval."""
    from scipy import stats

    _check(direction)
    values = [float(v) for v in values]
    effect = statistics.fmean(values) - level
    if len(values) < 2 or len(set(values)) == 1:
        return Effect(name, effect, effect, effect, len(values), "one-sample t (no spread)",
                      direction, 0.0 if effect else 1.0, min_seeds, confidence, judged, unit)
    test = stats.ttest_1samp(values, level)
    ci = test.confidence_interval(confidence_level=confidence)
    return Effect(name, effect, _finite(ci.low - level), _finite(ci.high - level),
                  len(values), "one-sample t", direction, _finite(test.pvalue), min_seeds,
                  confidence, judged, unit)


def proportion(name: str, successes: int, trials: int, level: float, *,
               direction: str = "greater", confidence: float = CONFIDENCE) -> Effect:
    """successes/trials - ``level`` with the Wilson score interval: the noise of the test
    items of one trained model (not of training seeds; the record says so)."""
    from scipy import stats

    _check(direction)
    result = stats.binomtest(int(successes), int(trials), level)
    ci = result.proportion_ci(confidence_level=confidence, method="wilson")
    return Effect(name, successes / trials - level, ci.low - level, ci.high - level,
                  int(trials), "Wilson interval, 1 seed", direction, float(result.pvalue),
                  min_seeds=1, confidence=confidence)


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """``{"mean", "std"}`` of a measure over seeds or runs: the sample standard deviation, 0
    for a single value (how the benchmarks record a spread beside their mean)."""
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def verdict(effects: Sequence[Effect], *, also: bool = True,
            unmet: str = "") -> tuple[str, str]:
    """(verdict, note) from the claim's effects: "holds" when every effect supports the claim
    (and ``also``, the claim's non-statistical conditions, is true); otherwise "does not hold
    at this scale", with a note when that is because the seeds could not decide, or ``unmet``
    (which conditions failed) when ``also`` is false."""
    effects = [e for e in effects if e.judged]
    undecided = [e for e in effects if e.decision == "undecided"]
    if all(e.decision == "supports" for e in effects) and also:
        return "holds", ""
    if undecided and not any(e.decision == "contradicts" for e in effects) and also:
        seeds = sorted({e.seeds for e in undecided})
        units = sorted({e.unit for e in undecided})
        return ("does not hold at this scale",
                f"undecided: {len(undecided)} of {len(effects)} effects not resolved at "
                f"{'/'.join(map(str, seeds))} {'/'.join(units)}")
    if not also:
        return "does not hold at this scale", unmet or "a measured condition is not met"
    return "does not hold at this scale", ""
