"""The playground's stream against `steerkit generate` at batch 2, on SmolLM2, in one run; and the README's
screenshot of the page, taken by a headless Chromium.

Both sides make the same two rows: the prompt twice, under one patch with a per-row strength ([2, K]: row 0
unsteered, row 1 the file's suggested strengths). `generate` is ``greedy_ids`` (what `steerkit generate`
calls), timed around the call, on the playground's model thread (``Playground.call``: the same thread, so
the same OpenMP team, as the page's generations); the page is the HTTP server on loopback, timed from the POST to the `done`
event with every event read and parsed as the page does. New tokens per second, both rows counted; the
two sides alternate, repeats reported per run and as the median.

    python benches/playground_stream.py -o benches/results/cpu/playground_smollm2
"""
from __future__ import annotations

import argparse
import http.client
import json
import platform
import socket
import statistics
import threading
import time
from pathlib import Path

import torch

VECTORS = "benches/results/cpu/steer_smollm2_places_3attr/vectors.safetensors"
PROMPT = "Describe your commute this morning."


def _serve(playground):
    import uvicorn

    from steerkit.playground.server import app

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = uvicorn.Server(uvicorn.Config(app(playground), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, port


def _page_stream(port: int, body: dict) -> tuple[float, int, list[str], int]:
    """(seconds, new tokens, the two texts, events) of one streamed generation over HTTP."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/api/generate", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    buf, events, done = b"", 0, None
    while done is None:
        chunk = resp.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            line, buf = buf.split(b"\n\n", 1)
            event = json.loads(line[len(b"data: "):])
            events += 1
            if event["type"] == "done":
                done = event
            elif event["type"] == "error":
                raise RuntimeError(event["message"])
    seconds = time.perf_counter() - t0
    conn.close()
    return seconds, done["tokens"], done["texts"], events


def _screenshot(port: int, out: Path, strength: dict, max_new_tokens: int) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    from steerkit.playground.headless import chromium

    driver = chromium(1400, 760)
    try:
        driver.get(f"http://127.0.0.1:{port}")
        WebDriverWait(driver, 60).until(lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "1")
        box = driver.find_element("id", "prompt")
        box.clear()
        box.send_keys(PROMPT)
        for name, value in strength.items():
            field = driver.find_element("id", f"strength-{name}")
            field.clear()
            field.send_keys(f"{value:.2f}")
        field = driver.find_element("id", "max-new-tokens")
        field.clear()
        field.send_keys(str(max_new_tokens))
        driver.find_element("id", "generate").click()
        WebDriverWait(driver, 600).until(lambda d: d.find_element("id", "status").get_attribute("data-state") == "done")
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--tokens", type=int, default=48)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    import steerkit
    from steerkit.generate import greedy_ids
    from steerkit.hf import load_model
    from steerkit.patching import steer
    from steerkit.playground import Playground

    vecs = steerkit.SteeringVectors.load(VECTORS)
    model, tok = load_model("smollm2")
    values = list(vecs.provenance["suggested_strength"])
    pg = Playground(model, tok, VECTORS, max_new_tokens=args.tokens, name="smollm2")
    server, port = _serve(pg)
    body = dict(prompt=PROMPT, strength=dict(zip(vecs.attributes, values)), max_new_tokens=args.tokens)
    strength = torch.zeros(2, vecs.num_attributes)
    strength[1] = torch.tensor(values)

    def generate():
        with steer(model, vecs, strength=strength):
            t0 = time.perf_counter()
            rows, _ = greedy_ids(model, tok, [PROMPT, PROMPT], args.tokens, chat=True)
            seconds = time.perf_counter() - t0
        return seconds, sum(map(len, rows)), [tok.decode(r, skip_special_tokens=True) for r in rows]

    # on the playground's model thread, as the page's generations run (one OpenMP team: see session.py)
    generate_on_model_thread = lambda: pg.call(generate)  # noqa: E731
    generate_on_model_thread(), _page_stream(port, body)  # warm-up
    runs = []
    for i in range(args.repeats):
        g_s, g_n, g_texts = generate_on_model_thread()
        p_s, p_n, p_texts, events = _page_stream(port, body)
        assert p_texts == g_texts, (p_texts, g_texts)  # the page's texts are generate's
        runs.append(dict(repeat=i, generate_tokens=g_n, generate_s=g_s, generate_tps=g_n / g_s,
                         page_tokens=p_n, page_s=p_s, page_tps=p_n / p_s, page_events=events))
        print(f"repeat {i}: generate {g_n / g_s:.1f} tokens/s, page {p_n / p_s:.1f} tokens/s "
              f"(ratio {(p_n / p_s) / (g_n / g_s):.3f})", flush=True)
    g = statistics.median(r["generate_tps"] for r in runs)
    pt = statistics.median(r["page_tps"] for r in runs)
    # the screenshot steers sentiment alone, at its suggested strength (all three at once loop on this prompt)
    shown = {a: (v if a == "sentiment" else 0.0) for a, v in zip(vecs.attributes, values)}
    _screenshot(port, out / "playground.png", shown, 32)
    server.should_exit = True
    import transformers

    result = dict(model="smollm2", vectors=VECTORS, prompt=PROMPT, strength=values, max_new_tokens=args.tokens,
                  texts=g_texts, runs=runs, generate_tps_median=g, page_tps_median=pt, ratio=pt / g,
                  machine=platform.processor() or platform.machine(), threads=torch.get_num_threads(),
                  torch=torch.__version__, transformers=transformers.__version__)
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(f"median: generate at batch 2 {g:.1f} tokens/s, the page's stream {pt:.1f} tokens/s: ratio {pt / g:.3f}")
    print(f"unsteered: {g_texts[0]!r}\nsteered:   {g_texts[1]!r}\nwritten to {out}")


if __name__ == "__main__":
    main()
