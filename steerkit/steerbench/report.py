"""The benchmark's result as a markdown report and a plot."""
from __future__ import annotations

import statistics

from .run import BenchResult, _curve, frontier, summarize

COLORS = {"prompt": "tab:purple", "mean_diff": "tab:blue", "probe": "tab:orange", "mat": "tab:green",
          "mat_paper": "tab:red"}
NAMES = {"prompt": "prompting", "mean_diff": "mean difference (CAA)", "probe": "probe direction (ITI)",
         "mat": "MAT-Steer, steerkit default", "mat_paper": "MAT-Steer, paper recipe"}


def _ms(cell: dict, digits: int = 2) -> str:
    return f"{cell['mean']:+.{digits}f} ± {cell['sd']:.{digits}f}"


def goal_rows(result: BenchResult, method: str = "mat", baseline: str = "mean_diff") -> list[tuple]:
    """(attribute, budget, seed, method's frontier, baseline's, held) for every seed: the goal is
    that ``method`` is on or above ``baseline``'s frontier at every budget."""
    s = result.settings
    rows = []
    if method not in s["methods"] or baseline not in s["methods"]:
        return rows
    for a in result.attributes:
        for b in s["budgets"]:
            for seed in (int(k) for k in result.baseline):
                f = [frontier(_curve([p for p in result.points if p.method == m and p.attribute == a
                                      and p.seed == seed and p.kind == "sweep"], a), b) for m in (method, baseline)]
                rows.append((a, b, seed, f[0], f[1], f[0] >= f[1]))
    return rows


def markdown(result: BenchResult) -> str:
    s, summary = result.settings, summarize(result)
    seeds = list(result.baseline)
    budgets = s["budgets"]
    where = sorted(set(result.places.values())) or [f"{s['site']}@{s['layer']}"]
    out = [f"## Steering benchmark: {result.model}, steering at {', '.join(where)}",
           "",
           f"{len(seeds)} data seed(s) ({', '.join(seeds)}); {s['prompts']} neutral prompts, {s['max_new_tokens']} greedy "
           f"tokens; strengths {', '.join(f'{x:g}' for x in s['strengths'])}; {s['per_class']} training texts per "
           "class and seed. Judge shifts are from the unsteered model on the same prompts; "
           "mean ± sd over seeds.",
           "",
           "### Judge shift reached within a fluency budget (ΔNLL per token under the unsteered model)",
           "",
           "| method | " + " | ".join(f"{a} ≤ +{b:g}" for a in result.attributes for b in budgets) + " |",
           "|---|" + "---|" * (len(result.attributes) * len(budgets))]
    for m in s["methods"]:
        if m == "prompt":
            continue
        out.append(f"| {NAMES[m]} | " + " | ".join(_ms(summary[f"{m}/{a}"][f"frontier@{b}"])
                                                  for a in result.attributes for b in budgets) + " |")
    out += ["", f"### At each method's calibrated strength (ΔNLL = +{s['calibration_budget']:g} on the sweep)", "",
            "| method | attribute | strength | judge shift | ΔNLL | distinct-3 | other judge moves | tokens changed "
            "on prompts that carry it | judge shift, all steered | share kept, all steered |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for m in s["methods"]:
        for a in result.attributes:
            c = summary[f"{m}/{a}"]
            strength = "instruction" if m == "prompt" else f"{c['strength']['mean']:.2f}"
            out.append(f"| {NAMES[m]} | {a} | {strength} | {_ms(c['target'])} | {_ms(c['dnll'])} | "
                       f"{c['distinct3']['mean']:.2f} | {_ms(c['interference']) if 'interference' in c else '-'} | "
                       f"{c['changed_carrying']['mean']:.2f} ± {c['changed_carrying']['sd']:.2f} | "
                       f"{_ms(c['both_target']) if 'both_target' in c else '-'} | "
                       f"{_ms(c['retention']) if 'retention' in c else '-'} |")
    kept = [(m, a) for m in s["methods"] for a in result.attributes if "retention" in summary[f"{m}/{a}"]]
    if kept:
        out += ["", "### All attributes steered at once, each at its calibrated strength: the share of its shift "
                "alone that each keeps, per seed", "",
                "| method | attribute | " + " | ".join(f"seed {sd}" for sd in seeds) + " | all ≥ 0.9 |",
                "|---|---|" + "---|" * (len(seeds) + 1)]
        for m, a in kept:
            per = summary[f"{m}/{a}"]["retention"]["per_seed"]
            out.append(f"| {NAMES[m]} | {a} | " + " | ".join(f"{x:.2f}" for x in per)
                       + f" | {'yes' if all(x >= 0.9 for x in per) else '**no**'} |")
    choice = result.place_choice
    if choice:
        places = list(next(iter(choice["score"].values())))
        out += ["", f"### Where each method steers, chosen on the development split ({choice['dev_prompts']} other "
                f"prompts, data seed {choice['dev_seed']}): score at each place (frontier at +"
                f"{s['calibration_budget']:g} nats per attribute, over the best any method reached there, averaged)",
                "", "| method | " + " | ".join(places) + " | chosen |", "|---|" + "---|" * (len(places) + 1)]
        for m, row in choice["score"].items():
            out.append(f"| {NAMES[m]} | " + " | ".join(f"{row[p]:.2f}" for p in places) + f" | {choice['chosen'][m]} |")
    pairs = [(m, a, k) for m in s["methods"] for a in result.attributes for k in summary[f"{m}/{a}"]
             if k.startswith("retention with ")]
    if pairs:
        out += ["", "### Each pair steered at once, the third left unsteered: the share of its shift alone each keeps, "
                "per seed", "",
                "| method | attribute | steered with | " + " | ".join(f"seed {sd}" for sd in seeds) + " | all ≥ 0.9 |",
                "|---|---|---|" + "---|" * (len(seeds) + 1)]
        for m, a, k in pairs:
            per = summary[f"{m}/{a}"][k]["per_seed"]
            out.append(f"| {NAMES[m]} | {a} | {k.removeprefix('retention with ')} | " + " | ".join(f"{x:.2f}" for x in per)
                       + f" | {'yes' if all(x >= 0.9 for x in per) else '**no**'} |")
    goal = goal_rows(result)
    if goal:
        held = sum(r[5] for r in goal)
        out += ["", f"### MAT-Steer (default) against the mean difference, per seed: on or above its frontier in "
                f"{held} of {len(goal)} (attribute, budget, seed) cells", "",
                "| attribute | budget | seed | MAT-Steer | mean difference | holds |", "|---|---|---|---|---|---|"]
        out += [f"| {a} | +{b:g} | {sd} | {f:+.3f} | {g:+.3f} | {'yes' if ok else '**no**'} |"
                for a, b, sd, f, g, ok in goal]
    base = result.baseline
    out += ["", "Unsteered: " + "; ".join(
        f"{a} {statistics.fmean(base[k]['judge'][a] for k in seeds):.3f}" for a in result.attributes)
        + f"; NLL {statistics.fmean(base[k]['nll'] for k in seeds):.3f} per token. "
        + "Times: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items() if not k.startswith("train"))
        + ". Versions: " + ", ".join(f"{k} {v}" for k, v in result.versions.items()) + "."]
    return "\n".join(out) + "\n"


def plot(result: BenchResult, path) -> str:
    """Judge shift against ΔNLL, one panel per attribute, the sweep of each method (means over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result.settings
    fig, axes = plt.subplots(1, len(result.attributes), figsize=(5.5 * len(result.attributes), 4.2), squeeze=False)
    for ax, a in zip(axes[0], result.attributes):
        for m in s["methods"]:
            mine = [p for p in result.points if p.method == m and p.attribute == a]
            if m == "prompt":
                pts = [p for p in mine if p.kind == "calibrated"]
                ax.scatter([statistics.fmean(p.dnll for p in pts)], [statistics.fmean(p.judge[a] for p in pts)],
                           marker="*", s=120, label=NAMES[m], zorder=3, color=COLORS[m])
                continue
            xs, ys = [0.0], [0.0]
            for value in s["strengths"]:
                pts = [p for p in mine if p.kind == "sweep" and p.strength == value]
                xs.append(statistics.fmean(p.dnll for p in pts))
                ys.append(statistics.fmean(p.judge[a] for p in pts))
            ax.plot(xs, ys, marker="o", label=NAMES[m], color=COLORS[m])
        for b in s["budgets"]:
            ax.axvline(b, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("ΔNLL per token under the unsteered model")
        ax.set_ylabel(f"{a} judge shift")
        ax.set_title(f"steering toward {a}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    where = ", ".join(sorted(set(result.places.values()))) or f"{s['site']}@{s['layer']}"
    fig.suptitle(f"{result.model}, {where}, {len(result.baseline)} seed(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
