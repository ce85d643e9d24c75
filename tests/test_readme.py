"""The README's measured tables are generated from the committed results (issue 15)."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("readme_results",
                                                  ROOT / "scripts/readme_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tables_equal_what_the_results_generate():
    script = _script()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert script.render(readme) == readme, (
        "README.md disagrees with results/: run python scripts/readme_results.py")


def test_the_check_fails_when_a_figure_is_edited_by_hand(tmp_path, monkeypatch):
    script = _script()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- results:throughput -->\n(.*?)<!-- /results:throughput -->", readme,
                      re.S).group(1)
    edited = readme.replace(block, block.replace("|", "| 1", 1))
    assert script.render(edited) != edited


def test_a_stray_copy_of_a_marker_is_refused():
    """A second end marker after a block (session 17 committed one) would sit outside every
    block, where the check could never see it."""
    script = _script()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    doubled = readme.replace("<!-- /results:clip-peer -->",
                             "<!-- /results:clip-peer -->\n<!-- /results:clip-peer -->")
    with pytest.raises(SystemExit, match="2 <!-- /results:clip-peer --> markers"):
        script.render(doubled)


def test_the_committed_tour_summary_is_complete():
    summary = json.loads((ROOT / "results/tour-summary.json").read_text())
    from deepatlas.lab import VERDICTS, list_experiments

    assert {e["id"] for e in summary["experiments"]} == {e.name for e in list_experiments()}
    assert all(e["verdict"] in VERDICTS for e in summary["experiments"])
    assert set(summary["verdicts"]) == set(VERDICTS)


def test_the_key_table_lists_every_config_section_key_and_task():
    """`--set section.key=value` is documented by one table: a key added without a row there
    is a key no reader can find."""
    import dataclasses

    from deepatlas.config import RunConfig
    from deepatlas.tasks import TASKS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| section | keys |"):]
    table = table[:table.index("\n\n")]
    rows = dict(re.findall(r"^\| `(\w+)` \| (.*) \|$", table, re.M))
    missing = []
    for section in dataclasses.fields(RunConfig):
        if section.name == "model" or section.default_factory is dataclasses.MISSING:
            continue  # model's keys are each model's own; the scalars are the top-level row
        keys = [k.name for k in dataclasses.fields(section.default_factory())]
        row = rows.get(section.name, "")
        missing += [f"{section.name}.{k}" for k in keys if f"`{k}`" not in row]
    top = re.search(r"^\| top level \| (.*) \|$", table, re.M).group(1)
    missing += [f"task {name}" for name in TASKS if name not in top]
    assert not missing, f"README's key table lacks {', '.join(missing)}"
