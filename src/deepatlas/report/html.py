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
    4: "4 Architectures", 5: "5 Problems and their fixes", 8: "8 The curriculum",
}
BADGES = {"holds": "holds", "does not hold at this scale": "not-here",
          "the text is wrong": "wrong"}

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


def _item(r: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(f"<tr><td>{e(k)}</td><td>{_number(v)}</td></tr>"
                   for k, v in r["metrics"].items())
    plots = "".join(f'<img src="{e(r["id"])}/{e(p)}" alt="{e(r["title"])}: plot">'
                    for p in r["plots"])
    badge = BADGES.get(r["verdict"], "not-here")
    return f"""
<section class="item" id="{e(r['id'])}">
  <h3>{e(r['map_id'])} {e(r['title'])} <span class="badge {badge}">{e(r['verdict'])}</span></h3>
  <p><b>Claim.</b> {e(r['claim'])}</p>
  <p class="source" lang="zh"><b>Source.</b> {e(r['source'])}</p>
  <p><b>Implemented in</b> <code>{e(r['implements'])}</code>.
     <b>Run it:</b> <code>deepatlas lab run {e(r['id'])}</code></p>
  {plots}
  <p><b>Measured.</b> {e(r['details'])}</p>
  <table class="metrics">{rows}</table>
  <p class="meta">{r['wall_s']:.1f} s, seed {r['seed']}, {'quick' if r['quick'] else 'full'}
     size</p>
</section>"""


def render(results: list[dict[str, Any]], out: Path, wall_s: float) -> Path:
    """Write ``out/index.html`` for ``results`` (result.json records, in map order)."""
    e = html.escape
    first = results[0] if results else {}
    summary_rows = "".join(
        f'<tr><td>{e(r["map_id"])}</td><td><a href="#{e(r["id"])}">{e(r["title"])}</a></td>'
        f'<td><span class="badge {BADGES.get(r["verdict"], "not-here")}">{e(r["verdict"])}'
        f"</span></td></tr>" for r in results)
    body, section = [], None
    for r in results:
        major = int(r["map_id"].split(",")[0].split(".")[0])
        if major != section:
            section = major
            body.append(f"<h2>{e(SECTIONS.get(major, str(major)))}</h2>")
        body.append(_item(r))
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
<p class="meta">{len(results)} experiments in {wall_s:.0f} s on {e(str(first.get('cpu')))}
  ({first.get('cpu_threads')} threads), torch {e(str(first.get('torch')))}, torchvision
  {e(str(first.get('torchvision')))}, Python {e(str(first.get('python')))};
  {time.strftime('%Y-%m-%d %H:%M')}. Every verdict below was computed from the numbers beside
  it: "holds", "does not hold at this scale", or "the text is wrong".</p>
<table>{summary_rows}</table>
{''.join(body)}
<script>{CHECK_IMAGES}</script>
</body>
</html>
"""
    path = Path(out) / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
