"""Streaming collection to shards: the rows equal the in-memory collection's, a rerun resumes (a torn
shard or a leftover .tmp is redone, the finished ones are left alone), a process killed mid-run resumes
to the same files, two torchrun ranks write what one process writes, and MAT-Steer trains from the
shards to the vectors it learns from the same rows in memory, holding one shard at a time."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from steerkit import mat
from steerkit.cli import main
from steerkit.mat import shards as sh
from steerkit.mat import trainer as mat_trainer
from steerkit.mat.rows import ShardRows
from steerkit.demos.toy.model import build_tokenizer, random_llama

WORDS = "the food was great and lovely the service was poor and slow the staff was kind".split()


def _examples(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        k = int(torch.randint(3, 12, (1,), generator=g))
        text = " ".join(WORDS[int(j)] for j in torch.randint(0, len(WORDS), (k,), generator=g))
        out.append({"text": text, "attribute": ["tone", "pace"][i % 2], "label": ["positive", "negative"][(i // 2) % 2]})
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    tok = build_tokenizer()
    model = random_llama(tok, kv_heads=2).eval()
    model.save_pretrained(str(root / "model"))
    tok.save_pretrained(str(root / "model"))
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in _examples(40)))
    ref = root / "ref"
    sh.collect_shards(model, tok, data, ref, site="block_out", layer=1, shard_tokens=40, batch_size=4, progress=False)
    return {"root": root, "model": model, "tok": tok, "data": data, "ref": ref}


def _files(folder):
    """{shard name: its tensors as bytes} (the header's metadata order is not fixed, the data is)."""
    from safetensors.torch import load_file
    return {p.name: {k: v.numpy().tobytes() for k, v in load_file(str(p)).items()}
            for p in sorted(folder.glob("shard-*.safetensors"))}


def test_shards_hold_each_examples_rows_as_collected_in_memory(setup):
    acts = sh.ActivationShards(setup["ref"])
    assert len(acts.shards) > 3 and all(s["rows"] <= 40 or s["end"] - s["start"] == 1 for s in acts.shards)
    texts = [e["text"] for e in _examples(40)]
    direct = mat.text_activations(setup["model"], setup["tok"], texts, "block_out", 1)
    for acts_s, example in acts.iter_shards():
        for i in example.unique().tolist():
            torch.testing.assert_close(acts_s[example == i], direct[texts[i]], rtol=1e-5, atol=1e-5)
    mem = acts.to_activations()
    assert mem.attributes == ["tone", "pace"] and sum(len(mem.pos[a]) + len(mem.neg[a]) for a in mem.attributes) == len(acts)


def test_a_rerun_redoes_torn_and_missing_shards_only(setup, tmp_path):
    out = tmp_path / "acts"
    shutil.copytree(setup["ref"], out)
    (out / "index.json").unlink()
    names = sorted(p.name for p in out.glob("shard-*.safetensors"))
    (out / names[0]).unlink()                                       # never written
    data = (out / names[1]).read_bytes()
    (out / names[1]).write_bytes(data[: len(data) // 2])             # torn
    (out / (names[2] + ".tmp")).write_bytes(b"partial")             # killed mid-write
    before = {n: (out / n).stat().st_mtime_ns for n in names[3:]}
    with pytest.raises(ValueError, match="did not finish"):
        sh.ActivationShards(out)
    sh.collect_shards(setup["model"], setup["tok"], setup["data"], out, site="block_out", layer=1, shard_tokens=40,
                      batch_size=4, progress=False)
    assert {n: (out / n).stat().st_mtime_ns for n in names[3:]} == before
    assert not list(out.glob("*.tmp")) and _files(out) == _files(setup["ref"])
    assert json.loads((out / "index.json").read_text()) == json.loads((setup["ref"] / "index.json").read_text())


def _collect_cmd(setup, out):
    return ["collect", "--model", str(setup["root"] / "model"), "--data", str(setup["data"]), "--site", "block_out",
            "--layer", "1", "--out", str(out), "--shard-tokens", "40", "--batch-size", "4", "--quiet"]


def test_collect_killed_mid_run_resumes_to_the_same_files(setup, tmp_path):
    out = tmp_path / "acts"
    env = dict(os.environ, STEERKIT_SLOW_SHARDS="0.5")  # a pause after each shard, to kill it between
    proc = subprocess.Popen([sys.executable, "-m", "steerkit"] + _collect_cmd(setup, out), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("shard-*.safetensors"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(out.glob("shard-*.safetensors")))
    assert 2 <= done < len(sh.ActivationShards(setup["ref"]).shards) and not (out / "index.json").exists()
    assert main(_collect_cmd(setup, out)) == 0
    assert _files(out) == _files(setup["ref"])


def test_two_torchrun_ranks_write_what_one_process_writes(setup, tmp_path):
    out = tmp_path / "acts"
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "steerkit"]
                          + _collect_cmd(setup, out), env=dict(os.environ, OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("rows of block_out@1") == 1  # rank 0 alone reports
    from safetensors.torch import load_file
    got, want = sorted(out.glob("shard-*.safetensors")), sorted(setup["ref"].glob("shard-*.safetensors"))
    assert [p.name for p in got] == [p.name for p in want]
    for a, b in zip(got, want):  # the same rows; one thread per rank rounds the matmuls differently
        ta, tb = load_file(str(a)), load_file(str(b))
        assert torch.equal(ta["example"], tb["example"])
        torch.testing.assert_close(ta["acts"], tb["acts"], rtol=1e-5, atol=1e-6)
    got, want = (json.loads((d / "index.json").read_text()) for d in (out, setup["ref"]))
    # the reference came from the model object in memory, this run from its checkpoint: the same data
    assert got.pop("provenance")["data_hash"] == want.pop("provenance")["data_hash"] and got == want


def test_training_from_shards_equals_training_in_memory_one_shard_at_a_time(setup, monkeypatch):
    cfg = mat.MATConfig(epochs=3, batch_pos=8, batch_neg=8)
    in_memory = mat.train(sh.ActivationShards(setup["ref"]).to_activations(), cfg, progress=False)
    # from disk: no group is ever read whole (the warm start samples 16 rows a side), and a streamed
    # statistic reads one shard's rows at a time
    monkeypatch.setattr(mat_trainer, "INIT_ROWS", 16)
    monkeypatch.setattr(ShardRows, "all", lambda self: pytest.fail("read every row of a group at once"))
    seen = []
    chunks = ShardRows.chunks

    def spy(self):
        for c in chunks(self):
            seen.append(len(c))
            yield c
    monkeypatch.setattr(ShardRows, "chunks", spy)
    from_disk = mat.train(sh.ActivationShards(setup["ref"]), cfg, progress=False)
    assert seen and max(seen) <= 40
    monkeypatch.undo()
    # the same sample of the warm start in memory: the same vectors
    monkeypatch.setattr(mat_trainer, "INIT_ROWS", 16)
    sampled = mat.train(sh.ActivationShards(setup["ref"]).to_activations(), cfg, progress=False)
    e_disk, e_mem = from_disk[("block_out", 1)], sampled[("block_out", 1)]
    for name in ("theta", "gate_w", "gate_b"):
        torch.testing.assert_close(getattr(e_disk, name), getattr(e_mem, name), rtol=1e-4, atol=1e-5)
    assert not torch.equal(in_memory[("block_out", 1)].theta, e_mem.theta)  # the sample size matters


def test_train_mat_from_acts_on_the_command_line(setup, tmp_path, capsys):
    out = tmp_path / "v.safetensors"
    assert main(["train-mat", "--acts", str(setup["ref"]), "-o", str(out), "--epochs", "2"]) == 0
    assert "ActivationShards(block_out@1" in capsys.readouterr().out and out.is_file()
    assert main(["train-mat", "--acts", str(setup["ref"]), "--model", "m", "-o", str(out)]) == 2
    assert "--acts" in capsys.readouterr().err
