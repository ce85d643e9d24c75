"""``index.html``: the map's sections in order, each claim with its measured evidence.

One static file next to the experiments' folders: plots are linked relatively, so the page
opens from disk, from a web server or from a zip; no JavaScript is needed to read it. A short
script only marks plots that failed to load (``data-broken-images`` on ``<body>``), which the
test in headless Chromium reads.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

SECTIONS = {
    1: "1 What deep learning is", 2: "2 Network basics", 3: "3 Training",
    4: "4 Architectures", 5: "5 Problems and their fixes", 6: "6 Applications",
    7: "7 Directions", 8: "8 The curriculum", 9: "9 Why deep learning works",
}
# "Why deep learning works" (MAP 9) names data, compute, algorithms and theory; data has its
# own experiment there, the others are measured elsewhere on the page and linked from it.
WHY_LINKS = (("vanishing-gradients", "algorithms: ReLU"), ("batchnorm-clipping",
             "algorithms: BatchNorm"), ("residual-depth", "algorithms: ResNet"),
             ("universal-approximation", "theory: universal approximation"))
BADGES = {"holds": "holds", "does not hold at this scale": "not-here",
          "the text is wrong": "wrong", "not measurable here": "unmeasurable"}

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1f24;
       max-width: 1100px; margin: 0 auto; padding: 1.5rem; }
h1 { margin-bottom: .2rem; } h2 { border-bottom: 2px solid #d0d7de; margin-top: 2.5rem; }
.meta { color: #57606a; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: .5rem 0; }
td, th { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
.item { border: 1px solid #d0d7de; border-radius: 8px; padding: 1rem 1.2rem; margin: 1.2rem 0; }
.item h3 { margin: 0 0 .3rem 0; }
.source { color: #57606a; } code { font-size: 12.5px; background: #f6f8fa; padding: 1px 4px; }
img { max-width: 100%; height: auto; display: block; margin: .6rem 0; }
.badge { display: inline-block; padding: 1px 10px; border-radius: 10px; font-size: 13px;
         font-weight: 600; }
.holds { background: #dafbe1; color: #116329; }
.not-here { background: #fff8c5; color: #7d4e00; }
.wrong { background: #ffebe9; color: #a40e26; }
.unmeasurable { background: #eaeef2; color: #424a53; }
.note { color: #7d4e00; font-size: 13px; } .gap { color: #57606a; }
.counts td:first-child { font-variant-numeric: tabular-nums; text-align: right; }
.metrics td:last-child { font-variant-numeric: tabular-nums; }
"""

CHECK_IMAGES = """
window.addEventListener("load", function () {
  var broken = Array.prototype.filter.call(document.images, function (img) {
    return !(img.complete && img.naturalWidth > 0);
  });
  document.body.setAttribute("data-broken-images", String(broken.length));
  broken.forEach(function (img) { img.insertAdjacentText("afterend", "(missing plot)"); });
});
"""


def _number(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return html.escape(str(value))


def _effects(r: dict[str, Any]) -> str:
    """The comparisons the verdict rests on: effect, 95% interval, seeds, method, decision."""
    e = html.escape
    if not r.get("effects"):
        return ""
    rows = "".join(
        f"<tr><td>{e(x['name'])}{'' if x.get('judged', True) else ' (shown, not judged)'}"
        f"</td><td>{_number(x['effect'])}</td><td>[{_number(x['low'])}, {_number(x['high'])}]"
        f"</td><td>{x['seeds']}</td><td>{e(x['method'])}</td><td>{e(x['decision'])}</td></tr>"
        for x in r["effects"])
    return ('<table class="effects"><tr><th>effect (claimed side: see name)</th><th>mean</th>'
            f"<th>95% interval</th><th>seeds</th><th>method</th><th>decision</th></tr>{rows}"
            "</table>")


def _parts(r: dict[str, Any]) -> str:
    e = html.escape
    if not r.get("parts"):
        return ""
    rows = "".join(
        f"<tr><td>{e(p['name'])}</td><td><span class=\"badge {BADGES.get(p['verdict'])}\">"
        f"{e(p['verdict'])}</span>{' (' + e(p['reason']) + ')' if p.get('reason') else ''}"
        f"</td><td>{e(p.get('details', ''))}</td></tr>" for p in r["parts"])
    return f"<table class=\"parts\">{rows}</table>"


def _item(r: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(f"<tr><td>{e(k)}</td><td>{_number(v)}</td></tr>"
                   for k, v in r["metrics"].items())
    source = r["source"] if isinstance(r["source"], list) else [r["source"]]
    qualifier = "".join(f' <span class="note">{e(t)}</span>'
                        for t in (r.get("note"), r.get("reason")) if t)
    correction = (f'<p><b>Correction.</b> {e(r["correction"])}</p>'
                  if r.get("correction") else "")
    seeds = r.get("seeds") or []
    plots = "".join(f'<img src="{e(r["id"])}/{e(p)}" alt="{e(r["title"])}: plot">'
                    for p in r["plots"])
    badge = BADGES.get(r["verdict"], "not-here")
    return f"""
<section class="item" id="{e(r['id'])}">
  <h3>{e(r['map_id'])} {e(r['title'])} <span class="badge {badge}">{e(r['verdict'])}</span>{qualifier}</h3>
  <p><b>Claim.</b> {e(r['claim'])}</p>
  <p class="source"><b>Source</b> (verbatim): <span lang="zh">{' … '.join(e(x) for x in source)}</span></p>
  {correction}
  <p><b>Implemented in</b> <code>{e(r['implements'])}</code>.
     <b>Run it:</b> <code>deepatlas lab run {e(r['id'])}</code></p>
  {plots}
  <p><b>Measured.</b> {e(r['details'])}</p>
  {_effects(r)}
  {_parts(r)}
  <table class="metrics">{rows}</table>
  <p class="meta">{r['wall_s']:.1f} s; {len(seeds)} seed{'s' if len(seeds) != 1 else ''}
     ({', '.join(map(str, seeds))}); {'smoke' if r.get('smoke') else 'quick' if r['quick'] else 'full'} size; run
     {e(str(r.get('run_id', ''))[:8])}</p>
</section>"""


def _gaps(results: list[dict[str, Any]]) -> dict[int, list[str]]:
    """Per section, a line for each MAP item that no experiment measures yet."""
    from deepatlas.lab.registry import list_experiments
    from deepatlas.lab.sources import map_items

    covered = {i.strip() for x in list_experiments() for i in x.map_id.split(",")}
    covered |= {i.strip() for r in results for i in r["map_id"].split(",")}
    gaps: dict[int, list[str]] = {}
    for item, text in map_items():
        if item not in covered:
            short = text if len(text) < 160 else text[:157].rsplit(" ", 1)[0] + " ..."
            gaps.setdefault(int(item.split(".")[0]), []).append(
                f'<p class="gap" id="map-{html.escape(item)}"><b>{html.escape(item)}</b> '
                f"{html.escape(short)} <i>(no experiment yet)</i></p>")
    return gaps


def _why_links(present: set[str]) -> str:
    """Section 9's pointers: to the experiments of this page that measure its algorithms and
    theory, and to the README's Speed section for compute."""
    e = html.escape
    links = [f'<a href="#{e(i)}">{e(label)}</a>' if i in present
             else f"{e(label)} (<code>deepatlas lab run {e(i)}</code>, not in this run)"
             for i, label in WHY_LINKS]
    return (f'<p class="why">Measured elsewhere on this page: {", ".join(links)}. Compute: '
            "training throughput here and on a GPU, <code>benchmarks/throughput.py</code> "
            "(the README's Speed section).</p>")


def render(results: list[dict[str, Any]], out: Path, wall_s: float) -> Path:
    """Write ``out/index.html`` for ``results`` (result.json records, in map order)."""
    from collections import Counter

    from deepatlas.lab.registry import EXPLAINED, VERDICTS, write_atomic

    e = html.escape
    first = results[0] if results else {}
    counts = Counter(r["verdict"] for r in results)
    count_rows = "".join(
        f'<tr><td>{counts.get(v, 0)}</td><td><span class="badge {BADGES[v]}">{e(v)}</span>'
        f"</td><td>{e(EXPLAINED[v])}</td></tr>" for v in VERDICTS)
    seed_counts = sorted({len(r.get("seeds") or []) for r in results} - {0})
    smoke = any(r.get("smoke") for r in results)
    size = ("smoke (a test of the code paths, not evidence)" if smoke
            else "quick" if all(r["quick"] for r in results) else "full") if results else ""
    gaps = _gaps(results)
    missing = sum(len(v) for v in gaps.values())
    gap_line = (f"{missing} items of the map have no experiment yet: each has a line in its "
                "section." if missing else "Every item of the map has an experiment.")
    summary_rows = "".join(
        f'<tr><td>{e(r["map_id"])}</td><td><a href="#{e(r["id"])}">{e(r["title"])}</a></td>'
        f'<td><span class="badge {BADGES.get(r["verdict"], "not-here")}">{e(r["verdict"])}'
        f"</span>{' ' + e(r['note'] or r['reason']) if r.get('note') or r.get('reason') else ''}"
        f"</td></tr>" for r in results)
    body = []
    by_section: dict[int, list[dict[str, Any]]] = {}
    for r in results:
        by_section.setdefault(int(r["map_id"].split(",")[0].split(".")[0]), []).append(r)
    for major in sorted(set(by_section) | set(gaps)):
        body.append(f"<h2>{e(SECTIONS.get(major, str(major)))}</h2>")
        if major == 9:
            body.append(_why_links({r["id"] for r in results}))
        body.extend(_item(r) for r in by_section.get(major, []))
        body.extend(gaps.get(major, []))
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>deepatlas: the map, measured</title>
<style>{STYLE}</style>
</head>
<body>
<h1>deepatlas: the map, measured</h1>
<table class="counts" id="verdict-counts">{count_rows}</table>
<p class="meta">{len(results)} experiments, {size} size, in {wall_s:.0f} s on
  {e(str(first.get('cpu')))} ({first.get('cpu_threads')} threads), torch
  {e(str(first.get('torch')))}, torchvision {e(str(first.get('torchvision')))}, Python
  {e(str(first.get('python')))}; {time.strftime('%Y-%m-%d %H:%M')}. Every verdict below was
  computed from the numbers beside it. Comparisons are judged on their 95% interval over
  seeds ({'/'.join(map(str, seed_counts)) or 'no'} seeds per experiment in this run; fewer
  than 3 decide nothing, and the verdict then says "undecided").
  {gap_line}</p>
<table>{summary_rows}</table>
{''.join(body)}
<script>{CHECK_IMAGES}</script>
</body>
</html>
"""
    path = Path(out) / "index.html"
    write_atomic(path, page)
    return path
