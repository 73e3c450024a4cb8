"""``Inspection`` as one self-contained HTML page: no script, no CDN, no network; it opens from disk.

Each prompt gets two columns, the unsteered and the steered continuation. Each token carries one thin lane
per attribute (per place, where the vectors steer several), shaded by its gate; hovering a token shows
its NLL under the unsteered model and, per attribute, the gate and strength × gate. Prompt tokens are
underlined dots: under ``tokens="all"`` they are steered too. The values are also in ``data-`` attributes,
so a test (or a script) reads exactly what is drawn.
"""
from __future__ import annotations

import html
import math

# one colour per attribute (matplotlib's tab10), so the page and the PNG agree
PALETTE = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.3em}h2{font-size:1.05em;margin:1.4em 0 .4em}h3{font-size:.95em;margin:.2em 0}
.meta{color:#555}.legend span{margin-right:1.2em}.sw{display:inline-block;width:1em;height:.6em;margin-right:.3em}
.cols{display:flex;gap:1.5em}.col{flex:1;min-width:0;border:1px solid #ddd;border-radius:6px;padding:.6em}
.summary{color:#555;font-size:.85em;margin-bottom:.4em}
.text{line-height:2.1;font-family:ui-monospace,monospace;font-size:.9em}
.tok{display:inline-flex;flex-direction:column;vertical-align:top;margin:0 1px 2px 0}
.tok .t{white-space:pre;padding:0 1px}.tok.prompt .t{border-bottom:1px dotted #999;color:#666}
.lane{display:block;height:4px;margin-top:1px;border-radius:1px}.lane.none{background:repeating-linear-gradient(90deg,#ccc 0 2px,transparent 2px 4px)}
.tok:hover{outline:1px solid #888}
"""


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:.3f})"


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.4f}"


def _lanes(result, trace, t: int) -> tuple[str, list[str]]:
    lanes, tips = [], []
    for p, (site, layer) in enumerate(result.places):
        place = f"{site}@{layer}"
        for k, attr in enumerate(result.attributes):
            g, a = float(trace.gates[p, t, k]), float(trace.applied[p, t, k])
            style = "" if math.isnan(g) else f' style="background:{_rgba(PALETTE[k % len(PALETTE)], g)}"'
            cls = "lane none" if math.isnan(g) else "lane"
            lanes.append(f'<i class="{cls}" data-attr="{html.escape(attr)}" data-place="{place}" '
                         f'data-gate="{_fmt(g)}" data-applied="{_fmt(a)}"{style}></i>')
            where = f" at {place}" if len(result.places) > 1 else ""
            tips.append(f"{attr}{where}: gate {'-' if math.isnan(g) else f'{g:.3f}'}, "
                        f"strength×gate {'-' if math.isnan(a) else f'{a:.3f}'}")
    return "".join(lanes), tips


def _token(result, trace, t: int) -> str:
    text = trace.tokens[t]
    shown = html.escape(text.replace("\n", "↵")) or "&#8203;"
    nll = float(trace.nll[t])
    lanes, tips = _lanes(result, trace, t)
    tip = "\n".join([f"{text!r}  NLL {'-' if math.isnan(nll) else f'{nll:.2f}'}"
                     + ("  (prompt)" if t < trace.prompt_len else "")] + tips)
    cls = "tok prompt" if t < trace.prompt_len else "tok"
    brk = "<br>" if "\n" in text else ""
    return (f'<span class="{cls}" data-index="{t}" data-nll="{_fmt(nll)}" title="{html.escape(tip)}">'
            f'<span class="t">{shown}</span>{lanes}</span>{brk}')


def _summary(result, trace) -> str:
    cont = slice(trace.prompt_len, len(trace.ids))
    parts = []
    for k, attr in enumerate(result.attributes):
        g = trace.gates[:, cont, k]
        g = g[~g.isnan()]
        parts.append(f"{html.escape(attr)} mean gate {float(g.mean()):.2f}" if g.numel() else f"{html.escape(attr)} -")
    nll = trace.nll[cont]
    nll = nll[~nll.isnan()]
    mean = f"{float(nll.mean()):.2f}" if nll.numel() else "-"
    return f'<div class="summary">on the continuation: {"; ".join(parts)}; mean NLL {mean}</div>'


def _column(result, trace, kind: str) -> str:
    tokens = "".join(_token(result, trace, t) for t in range(len(trace.ids)))
    return (f'<div class="col" data-kind="{kind}"><h3>{kind}</h3>{_summary(result, trace)}'
            f'<div class="text">{tokens}</div></div>')


def render(result) -> str:
    strengths = ", ".join(f"{html.escape(a)} {s:g}" for a, s in zip(result.attributes, result.strength))
    places = ", ".join(f"{site}@{layer}" for site, layer in result.places)
    legend = "".join(f'<span><i class="sw" style="background:{PALETTE[k % len(PALETTE)]}"></i>{html.escape(a)}</span>'
                     for k, a in enumerate(result.attributes))
    sections = []
    for i, view in enumerate(result.views):
        sections.append(f'<section class="prompt" data-index="{i}"><h2>{html.escape(view.prompt)}</h2><div class="cols">'
                        f'{_column(result, view.unsteered, "unsteered")}{_column(result, view.steered, "steered")}'
                        "</div></section>")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>steerkit inspect</title>"
            f"<style>{_CSS}</style></head><body><h1>steerkit inspect</h1>"
            f'<p class="meta">strength: {strengths} · tokens: {html.escape(str(result.tokens))} · places: {places}. '
            "Each lane is one attribute's gate on that token (darker: nearer 1); the gate read at a token steers "
            "the next one. Dotted: the prompt. Hover a token for its values.</p>"
            f'<p class="legend">{legend}</p>{"".join(sections)}</body></html>\n')
