"""Summarises one ``gpu_session.sh all`` run: reads ``sections.tsv`` (name, status, seconds, last log
line) and the sections' own outputs in the folder, writes ``session.json`` and ``session.md`` beside
them, and prints the markdown.

    python benches/session_summary.py <out>/<device>
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

OUTPUTS = {  # section -> the markdown it writes, relative to the folder
    "gated": "gated/gated_steer.md",
    "fused": "fused/gpu.md",
    "decode": "decode/gpu.md",
    "focus": "focus/focus_step.md",
}


def main(folder: str) -> int:
    root = Path(folder)
    sections = []
    for line in (root / "sections.tsv").read_text().splitlines():
        name, status, seconds, *note = line.split("\t")
        sections.append({"section": name, "status": status, "seconds": int(seconds), "last_line": " ".join(note)})
    info = json.loads((root / "info.json").read_text()) if (root / "info.json").is_file() else {}
    summary = {"sections": sections, "seconds": sum(s["seconds"] for s in sections),
               "environment": {k: info.get(k) for k in ("steerkit", "python", "torch", "transformers", "cuda_device")},
               "build": info.get("build"), "routes": info.get("routes")}
    vllm = root / "vllm" / "vllm_steer.json"
    if vllm.is_file():
        summary["vllm"] = json.loads(vllm.read_text())
    (root / "session.json").write_text(json.dumps(summary, indent=1, default=str))
    env = summary["environment"]
    md = [f"# GPU session on {env.get('cuda_device') or 'the CPU (smoke run)'}", "",
          f"steerkit {env.get('steerkit')}, torch {env.get('torch')}, transformers {env.get('transformers')}, "
          f"python {env.get('python')}; {summary['seconds']} s in all", "",
          "| section | status | seconds | last line of its log |", "|---|---|---|---|"]
    md += [f"| {s['section']} | {s['status']} | {s['seconds']} | {s['last_line'].replace('|', '/')} |" for s in sections]
    for name, rel in OUTPUTS.items():
        path = root / rel
        if path.is_file():
            md += ["", f"## {name} ({rel})", "", path.read_text().strip()]
    if "vllm" in summary:
        md += ["", "## vllm (vllm/vllm_steer.json)", "", "```", json.dumps(summary["vllm"], indent=1)[:4000], "```"]
    text = "\n".join(md) + "\n"
    (root / "session.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
