"""The report page as one self-contained HTML document: CSS inline, plots as data URIs, a Content-Security-Policy
that forbids any network access (`render_html`, pure).
"""

from __future__ import annotations

import html
import re
from typing import Any

from harness.reporting.page import Plot, Report, Table, data_uri

# ---------------------------------------------------------------------------------------------------------------
# HTML (pure)
# ---------------------------------------------------------------------------------------------------------------

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d2125;
       background: #f6f7f9; }
header { background: #24364b; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; opacity: .85; word-break: break-all; }
nav { padding: 8px 28px; background: #e8ecf1; position: sticky; top: 0; }
nav a { margin-right: 16px; color: #24364b; text-decoration: none; font-weight: 600; }
main { padding: 8px 28px 40px; max-width: 1400px; }
section { margin-top: 26px; }
h2 { border-bottom: 2px solid #24364b; padding-bottom: 3px; font-size: 18px; }
.wrap { overflow-x: auto; margin: 14px 0 4px; }
table { border-collapse: collapse; background: #fff; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid #d3d8de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f5; }
td.num { text-align: right; white-space: nowrap; }
td:not(.num) { max-width: 36em; overflow-wrap: anywhere; }
tr.bold td { font-weight: 700; background: #eaf6ea; }
td.resolved { color: #0a6b22; font-weight: 600; white-space: nowrap; }
td.unresolved { color: #8a5a00; white-space: nowrap; }
p.note { color: #555; font-size: 12px; margin: 2px 0 10px; }
figure { margin: 16px 0; background: #fff; padding: 10px; border: 1px solid #d3d8de; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #444; font-size: 13px; margin-top: 4px; }
pre { background: #fff; border: 1px solid #d3d8de; padding: 10px; overflow-x: auto; font-size: 12px; }
ul.notes li { color: #8a5a00; }
"""

CHECK_SCRIPT = """
(function () {
  // Self-check for a browser test: broken images and script errors, written onto the body element once loaded.
  // In <head>, so that it counts errors of anything after it; the body exists by the time load fires.
  var errors = 0;
  function mark() { if (document.body) { document.body.setAttribute("data-errors", String(errors)); } }
  window.addEventListener("error", function () { errors += 1; mark(); }, true);
  window.addEventListener("load", function () {
    var imgs = document.images, broken = 0;
    for (var i = 0; i < imgs.length; i++) {
      if (!imgs[i].complete || imgs[i].naturalWidth === 0) { broken += 1; }
    }
    document.body.setAttribute("data-images", String(imgs.length));
    document.body.setAttribute("data-broken-images", String(broken));
    mark();
  });
})();
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
"""The page's Content-Security-Policy: nothing may load from anywhere but the page itself."""

_NUMERIC = re.compile(r"^[+\-]?(\d+\.?\d*|\.\d+)( ± [\d.]+)?( \[[^\]]+\])?( \([^)]*\))?$")
"""A score cell (`0.634`, `+0.012`, `0.690 ± 0.012 [0.61, 0.75]`, `0.588 [0.47, 0.64] (0.088)`): right-aligned;
anything else (a stage name, a version such as 2.14.1) is text."""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _cell(text: str) -> str:
    if text in ("resolved", "not resolved"):
        return f'<td class="{text.replace("not ", "un")}">{_e(text)}</td>'
    return f'<td class="num">{_e(text)}</td>' if _NUMERIC.match(text) or text == "-" else f"<td>{_e(text)}</td>"


def table_html(table: Table) -> str:
    """One table (caption, header, rows, note) as HTML; every text escaped."""
    head = "".join(f"<th>{_e(c)}</th>" for c in table.columns)
    body = []
    for i, row in enumerate(table.rows):
        cls = ' class="bold"' if i < len(table.bold) and table.bold[i] else ""
        body.append(f"<tr{cls}>" + "".join(_cell(c) for c in row) + "</tr>")
    note = f'<p class="note">{_e(table.note)}</p>' if table.note else ""
    return (f'<div class="wrap"><table><caption>{_e(table.title)}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>{note}")


def plot_html(plot: Plot) -> str:
    """One figure: its PNG inline as a data URI, its title and caption."""
    caption = f"<figcaption>{_e(plot.caption)}</figcaption>" if plot.caption else ""
    return (f"<figure><h3>{_e(plot.title)}</h3><img src=\"{data_uri(plot.png)}\" alt=\"{_e(plot.title)}\">"
            f"{caption}</figure>")


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{_e(title)}</h2>{body}</section>'


def render_html(report: Report) -> str:
    """The whole page: inline CSS, inline images, a tiny inline self-check script, nothing fetched.

    Args:
        report: what to show (`collect_report`, or made up by a test).

    Returns:
        The HTML document.
    """
    sections: list[tuple[str, str, str]] = []
    if report.notes:
        items = "".join(f"<li>{_e(n)}</li>" for n in report.notes)
        sections.append(("notes", "Not shown", f'<ul class="notes">{items}</ul>'))
    if report.tables:
        body = "".join(table_html(t) for t in report.tables)
        sections.append(("tables", "Tables I, II (measured), III and IV", body))
    if report.leaderboard:
        sections.append(("leaderboard", "Leaderboard", "".join(table_html(t) for t in report.leaderboard)))
    if report.plots:
        sections.append(("plots", "Plots", "".join(plot_html(p) for p in report.plots)))
    env = []
    if report.environment is not None:
        env.append(table_html(report.environment))
    if report.git is not None:
        env.append(f"<p>git: <code>{_e(report.git)}</code></p>")
    if report.timings is not None:
        env.append(table_html(report.timings))
    if env:
        sections.append(("environment", "Environment, time and memory", "".join(env)))
    if report.config is not None:
        where = f'<p class="note">{_e(report.config_source)}</p>' if report.config_source else ""
        sections.append(("config", "Resolved config", f"{where}<pre>{_e(report.config)}</pre>"))
    if report.files:
        items = "".join(f"<li>{_e(what)}: <code>{_e(where)}</code></li>" for what, where in report.files)
        sections.append(("files", "Files", f"<ul>{items}</ul>"))
    nav = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title, _ in sections)
    main = "".join(_section(*s) for s in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(report.title)}</title><style>{CSS}</style><script>{CHECK_SCRIPT}</script></head>\n"
        '<body data-broken-images="pending" data-images="0" data-errors="0">'
        f"<header><h1>{_e(report.title)}</h1><p>{_e(report.kind)}: {_e(report.source)}</p></header>"
        f"<nav>{nav}</nav><main>{main}</main></body></html>\n"
    )
