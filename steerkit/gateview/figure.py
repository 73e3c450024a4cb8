"""``Inspection`` as a PNG: per prompt, the unsteered and the steered text as rows of tokens with one
lane per attribute shaded by its gate (the colours of the HTML page)."""
from __future__ import annotations

from pathlib import Path

from .html import PALETTE


def save_png(result, path: str | Path, max_tokens: int = 60) -> Path:
    try:
        import matplotlib
    except ImportError:
        raise ValueError("png: needs matplotlib (pip install 'steerkit[plot]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    lanes = [(p, k) for p in range(len(result.places)) for k in range(len(result.attributes))]
    rows = [(i, kind) for i in range(len(result.views)) for kind in ("unsteered", "steered")]
    width = min(max_tokens, max(len(getattr(v, kind).ids) for v in result.views for kind in ("unsteered", "steered")))
    fig, axes = plt.subplots(len(rows), 1, figsize=(max(8.0, 0.32 * width), 1.1 + 0.55 * len(rows) * (1 + len(lanes) / 3)),
                             squeeze=False)
    for ax, (i, kind) in zip(axes[:, 0], rows):
        trace = getattr(result.views[i], kind)
        start = max(0, len(trace.ids) - width)  # the end of a long prompt and the whole continuation
        for x, t in enumerate(range(start, len(trace.ids))):
            for j, (p, k) in enumerate(lanes):
                y = len(lanes) - 1 - j  # the first attribute on top
                g = float(trace.gates[p, t, k])
                if g == g:  # NaN: no forward read this token
                    ax.add_patch(plt.Rectangle((x, y), 0.95, 0.9, color=to_rgb(PALETTE[k % len(PALETTE)]), alpha=g,
                                               linewidth=0))
            colour = "#777" if t < trace.prompt_len else "#000"
            ax.text(x + 0.45, len(lanes) + 0.15, trace.tokens[t].replace("\n", "↵"), rotation=60, fontsize=7,
                    ha="left", va="bottom", color=colour, family="monospace")
        ax.set_xlim(0, width)
        ax.set_ylim(0, len(lanes) + 2.6)
        ax.set_yticks([len(lanes) - 1 - j + 0.45 for j in range(len(lanes))])
        ax.set_yticklabels([result.attributes[k] if len(result.places) == 1 else
                            f"{result.attributes[k]} {result.places[p][0]}@{result.places[p][1]}" for p, k in lanes],
                           fontsize=7)
        ax.set_xticks([])
        for side in ("top", "right", "bottom"):
            ax.spines[side].set_visible(False)
        ax.set_title(f"{kind}: {result.views[i].prompt[:80]}", fontsize=8, loc="left")
    strengths = ", ".join(f"{a} {s:g}" for a, s in zip(result.attributes, result.strength))
    fig.suptitle(f"gate per token (darker: nearer 1; grey text: the prompt); strength {strengths}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
