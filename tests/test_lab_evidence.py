"""The lab's evidence standard (issue 15): verbatim sources, one statistics helper, a fourth
verdict with its reason, and a tour that reruns into the same folder. Fast: under a minute."""

import json
import math
from pathlib import Path

import pytest

from deepatlas.lab import REASONS, VERDICTS, Result, list_experiments
from deepatlas.lab.sources import is_verbatim, map_items, normalise
from deepatlas.lab.stats import against, compare, mean_std, proportion, verdict

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def test_every_source_fragment_is_verbatim_from_the_seed_text():
    # The seed text ships in the package (deepatlas/lab/data), so this runs without ../shared.
    for exp in list_experiments():
        assert exp.source, exp.name
        for fragment in exp.source:
            assert is_verbatim(fragment), f"{exp.name}: not in the source text: {fragment!r}"


def test_a_rewritten_fragment_is_caught():
    assert is_verbatim("早停法:监控验证集准确率")
    assert is_verbatim("早停法:  监控验证集准确率".replace("  ", "")) and not is_verbatim(
        "早停法: 监控验证集准确率 ; 数据增强")


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is not beside this clone (CI)")
def test_the_packaged_copies_equal_the_shared_originals():
    data = Path(__file__).resolve().parents[1] / "src/deepatlas/lab/data"
    seed = SHARED / "seed/deep-learning-core-techniques.zh.txt"
    assert (data / seed.name).read_text("utf-8") == seed.read_text("utf-8")
    assert (data / "MAP.md").read_text("utf-8") == (SHARED / "MAP.md").read_text("utf-8")


def test_map_items_are_parsed_in_order():
    ids = [i for i, _ in map_items()]
    assert ids[:3] == ["1.1", "1.2", "1.3"] and "6.3" in ids and ids[-2:] == ["8", "9"]
    assert ids.index("7.1") < ids.index("7.5") < ids.index("8")


def test_normalise_collapses_whitespace():
    assert normalise("  a \n b\t c ") == "a b c"


# The statistics helper against scipy and against a case computed by hand.

def test_paired_interval_matches_the_t_formula_by_hand():
    a, b = [0.90, 0.92, 0.95, 0.93], [0.88, 0.90, 0.92, 0.92]
    d = [x - y for x, y in zip(a, b)]  # 0.02, 0.02, 0.03, 0.01
    mean = sum(d) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 3)
    t = 3.182446305284263  # t_{0.975, 3}
    e = compare("a - b", a, b)
    assert e.effect == pytest.approx(mean)
    assert (e.low, e.high) == pytest.approx((mean - t * sd / 2, mean + t * sd / 2))
    assert e.decision == "supports" and e.seeds == 4 and e.method == "paired t"
    assert compare("a - b", a, b, direction="less").decision == "contradicts"


def test_welch_interval_matches_scipy():
    from scipy import stats

    a, b = [1.0, 1.2, 0.9, 1.1, 1.3], [0.7, 0.75, 0.6]
    e = compare("a - b", a, b, paired=False)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval()
    assert (e.low, e.high) == pytest.approx((ci.low, ci.high))
    assert e.method == "Welch t" and e.decision == "supports"


def test_an_interval_that_includes_zero_decides_nothing():
    e = compare("a - b", [0.90, 0.93, 0.91], [0.91, 0.90, 0.915])
    assert e.low < 0 < e.high and e.decision == "undecided"
    assert "not decided" in e.why
    result, note = verdict([e])
    assert result == "does not hold at this scale" and "undecided" in note


def test_too_few_seeds_decide_nothing_even_when_the_interval_excludes_zero():
    e = compare("a - b", [1.0, 1.1], [0.0, 0.1])  # no spread in the differences
    assert (e.low, e.high) == (1.0, 1.0) and e.seeds == 2
    assert e.decision == "undecided" and "too few seeds" in e.why


def test_one_sample_interval_against_a_chance_floor():
    from scipy import stats

    losses = [0.01, 0.02, 0.4]
    e = against("loss - ln 8", losses, math.log(8), direction="less")
    ci = stats.ttest_1samp(losses, math.log(8)).confidence_interval()
    assert (e.low, e.high) == pytest.approx((ci.low - math.log(8), ci.high - math.log(8)))
    assert e.decision == "supports"
    # Above chance: the clipped RNN of the issue (2.27 > ln 8) would not pass.
    assert against("loss - ln 8", [2.27, 2.25, 2.30], math.log(8),
                   direction="less").decision == "contradicts"


def test_proportion_uses_the_wilson_interval():
    e = proportion("acc - 0.5", 1818, 2000, 0.5)
    assert e.effect == pytest.approx(0.409) and e.low > 0.38 and e.decision == "supports"
    assert proportion("acc - 0.9", 1818, 2000, 0.9).decision == "undecided"


def test_unjudged_effects_do_not_change_the_verdict():
    shown = compare("shown", [0.1, 0.2, 0.15], [0.5, 0.6, 0.55], judged=False)
    judged = compare("judged", [0.9, 0.95, 0.93], [0.5, 0.6, 0.55])
    assert shown.decision == "contradicts"
    assert verdict([judged, shown]) == ("holds", "")


# The fourth verdict.

def test_not_measurable_needs_one_of_the_reasons():
    assert "not measurable here" in VERDICTS
    assert set(REASONS) == {"no data", "no GPU", "needs pretrained weights",
                            "needs human listeners"}
    Result({}, "not measurable here", "", reason="needs pretrained weights")
    with pytest.raises(ValueError, match="needs a reason"):
        Result({}, "not measurable here", "")
    with pytest.raises(ValueError, match="reason must be one of"):
        Result({}, "not measurable here", "", reason="too slow")
    with pytest.raises(ValueError, match="needs a reason"):
        Result({}, "holds", "", reason="no data")


# The tour reruns into the same folder.

def test_a_second_tour_in_the_same_folder_measures_afresh(tmp_path, monkeypatch):
    from deepatlas.lab.experiments import curriculum
    from deepatlas.lab.tour import run_tour

    # The curriculum trains digits with tasks.fit; the other data sets are hidden so that the
    # test takes seconds wherever Fashion-MNIST is installed.
    monkeypatch.setattr(curriculum, "number_of_classes",
                        lambda name: 10 if name == "digits" else None)
    only = ["batchnorm-formula", "curriculum"]
    first = run_tour(tmp_path, quick=True, only=only, log=lambda line: None)
    records = {n: json.loads((tmp_path / n / "result.json").read_text()) for n in only}
    stale = tmp_path / "curriculum" / "stale.txt"
    stale.write_text("left by an earlier run")
    second = run_tour(tmp_path, quick=True, only=only, log=lambda line: None)
    for name in only:
        again = json.loads((tmp_path / name / "result.json").read_text())
        assert again["run_id"] != records[name]["run_id"]
        assert again["verdict"] in VERDICTS
    assert not stale.exists()  # the folder was replaced, not added to
    assert (tmp_path / "curriculum" / "digits" / "best.pt").is_file()
    assert {e["run_id"] for e in first["experiments"]}.isdisjoint(
        {e["run_id"] for e in second["experiments"]})
    assert not list(tmp_path.glob(".*"))  # no temporary folders left behind
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert [e["run_id"] for e in saved["experiments"]] == [
        e["run_id"] for e in second["experiments"]]
    curriculum = next(e for e in saved["experiments"] if e["id"] == "curriculum")
    assert curriculum["verdict"] == "not measurable here" and curriculum["reason"] == "no data"
    assert all(p["verdict"] != "not measurable here" or p["reason"] in REASONS
               for p in curriculum["parts"])
    page = (tmp_path / "index.html").read_text()
    assert 'id="verdict-counts"' in page


def test_a_map_item_without_an_experiment_has_a_line_in_its_section(monkeypatch):
    from deepatlas.lab import sources
    from deepatlas.report import html

    monkeypatch.setattr(sources, "map_items", lambda: [("6.3", "Cross-modal"),
                                                       ("6.9", "A future item of the map")])
    gaps = html._gaps([])
    assert list(gaps) == [6] and len(gaps[6]) == 1
    assert 'id="map-6.9"' in gaps[6][0] and "(no experiment yet)" in gaps[6][0]


def test_a_failing_experiment_keeps_the_previous_result(tmp_path, monkeypatch):
    from deepatlas.lab import registry

    registry.run_experiment("batchnorm-formula", tmp_path)
    before = json.loads((tmp_path / "batchnorm-formula" / "result.json").read_text())
    exp = registry.get_experiment("batchnorm-formula")

    def boom(ctx):
        print("about to fail")
        raise RuntimeError("boom")

    monkeypatch.setitem(registry._EXPERIMENTS, "batchnorm-formula",
                        registry.Experiment(**{**exp.__dict__, "run": boom}))
    with pytest.raises(RuntimeError):
        registry.run_experiment("batchnorm-formula", tmp_path)
    after = json.loads((tmp_path / "batchnorm-formula" / "result.json").read_text())
    assert after["run_id"] == before["run_id"]
    assert "about to fail" in (tmp_path / "batchnorm-formula.failed" / "log.txt").read_text()


def test_the_tour_starts_the_longest_experiments_first(tmp_path):
    """LPT: the previous run's lengths in this folder win over the shipped quick table, an
    experiment never measured goes first, and a full-size tour ignores a quick run's lengths."""
    from types import SimpleNamespace

    from deepatlas.lab.tour import longest_first

    exps = [SimpleNamespace(name=n) for n in ("attention", "bert", "never-measured", "gpt")]
    shipped = [e.name for e in longest_first(exps, tmp_path, quick=True)]
    assert shipped[0] == "never-measured" and set(shipped) == {e.name for e in exps}
    (tmp_path / "summary.json").write_text(json.dumps({"quick": True, "experiments": [
        {"id": "attention", "wall_s": 90.0}, {"id": "bert", "wall_s": 1.0},
        {"id": "never-measured", "wall_s": 5.0}, {"id": "gpt", "wall_s": 30.0}]}))
    assert [e.name for e in longest_first(exps, tmp_path, quick=True)] == [
        "attention", "gpt", "never-measured", "bert"]
    assert [e.name for e in longest_first(exps, tmp_path, quick=False)] == [
        e.name for e in exps]  # nothing known at full size: map order


def test_mean_std_is_the_mean_and_sample_deviation_and_zero_for_one_value():
    spread = mean_std([1.0, 2.0, 4.0])
    assert spread["mean"] == pytest.approx(7 / 3)
    assert spread["std"] == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2
                                                      + (4 - 7 / 3) ** 2) / 2))
    assert mean_std([3.0]) == {"mean": 3.0, "std": 0.0}
