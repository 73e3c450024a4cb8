"""Every error a new user met (issue 16, item 6): one clear line naming the argument; from the CLI,
exit code 2 and no traceback; nothing done before the check."""
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

import steerkit
from steerkit import SteeringVectors, cli

from test_cli_generate import _checkpoint
from tiny_models import tiny_model

NO_CUDA = not torch.cuda.is_available()


def _run(argv, capsys):
    """(exit code, stderr) of the CLI; a traceback would fail the test by propagating."""
    capsys.readouterr()  # what came before (a checkpoint's save progress bar)
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    return rc, capsys.readouterr().err


def test_integer_strength_names_the_dtype_not_the_shape():
    model = tiny_model("llama")
    vecs = SteeringVectors.from_tensors(torch.randn(2, 32), site="mlp_out", layer=0)
    with pytest.raises(ValueError, match=r"strength must be a floating-point tensor, got dtype torch.int64"):
        steerkit.patch(model, vecs, strength=torch.tensor([1, 2]))
    assert not getattr(model, "_steerkit_patched", {})


def test_meta_strength_is_refused_by_name():
    model = tiny_model("llama")
    vecs = SteeringVectors.from_tensors(torch.randn(2, 32), site="mlp_out", layer=0)
    with pytest.raises(ValueError, match="strength is on the meta device"):
        steerkit.patch(model, vecs, strength=torch.ones(2, device="meta"))
    with steerkit.steer(model, vecs) as handle, pytest.raises(ValueError, match="meta device"):
        handle.set_strength(torch.ones(2, device="meta"))


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA: the error under test cannot happen")
@pytest.mark.parametrize("command", ["generate", "eval-focus", "train-mat", "fit"])
def test_device_cuda_without_cuda_is_one_line(command, tmp_path, capsys):
    model, vecs = _checkpoint(tmp_path)
    argv = {
        "generate": ["--model", str(model), "--vectors", str(vecs), "--prompt", "w1"],
        "eval-focus": ["--model", str(model), "--task", str(tmp_path / "t.json"), "--test", f"a={tmp_path / 'x'}"],
        "train-mat": ["--model", str(model), "--data", str(tmp_path / "d.jsonl"), "--site", "block_out", "--layer",
                      "0", "-o", str(tmp_path / "out.safetensors")],
        "fit": ["--model", str(model), "--task", str(tmp_path / "t.json"), "--data", str(tmp_path / "d.jsonl"),
                "-o", str(tmp_path / "adapter")],
    }[command]
    rc, err = _run([command, *argv, "--device", "cuda"], capsys)
    assert rc == 2
    assert err.startswith(f"steerkit {command}: --device: 'cuda' asked for, but this machine has no usable CUDA")
    assert err.count("\n") == 1


def test_outputs_into_a_missing_folder_are_refused_before_any_work(tmp_path, capsys):
    model, _ = _checkpoint(tmp_path)
    missing = tmp_path / "missing" / "dir" / "x.safetensors"
    rc, err = _run(["train-mat", "--model", str(model), "--data", str(tmp_path / "nothing.jsonl"), "--site",
                    "block_out", "--layer", "0", "-o", str(missing)], capsys)
    # the data file does not exist either: the output is checked first, so no work could have started
    assert rc == 2 and f"--output: cannot write x.safetensors: folder {missing.parent} does not exist" in err
    rc, err = _run(["demo", "--save-vectors", str(missing)], capsys)
    assert rc == 2 and "--save-vectors: cannot write x.safetensors" in err
    rc, err = _run(["fit", "--model", str(model), "--task", "t.json", "--data", "d.jsonl", "-o",
                    str(tmp_path / "missing" / "adapter")], capsys)
    assert rc == 2 and "--output: cannot write adapter" in err


@pytest.mark.parametrize("argv, option", [
    (["demo", "--prompts", "0"], "--prompts"),
    (["fit", "--model", "m", "--task", "t", "--data", "d", "-o", "o", "--epochs", "0"], "--epochs"),
    (["fit", "--model", "m", "--task", "t", "--data", "d", "-o", "o", "--lr", "0"], "--lr"),
    (["train-mat", "--model", "m", "--data", "d", "--site", "block_out", "--layer", "-1", "-o", "x"], "--layer"),
    (["fit", "--model", "m", "--task", "t", "--data", "d", "-o", "o", "--val-fraction", "1.5"], "--val-fraction"),
    (["fit", "--model", "m", "--task", "t", "--data", "d", "-o", "o", "--dropout", "1"], "--dropout"),
    (["fit", "--model", "m", "--task", "t", "--data", "d", "-o", "o", "--lr", "inf"], "--lr"),
    (["fit", "--model", "m", "--task", "t", "--data", "d", "-o", "o", "--lr", "nan"], "--lr"),
    (["fit", "--model", "m", "--task", "t", "--data", "d", "-o", "o", "--val-disagreeing", "-1"], "--val-disagreeing"),
])
def test_numbers_out_of_range_are_argument_errors(argv, option, capsys):
    rc, err = _run(argv, capsys)
    assert rc == 2 and f"argument {option}" in err and "Traceback" not in err


def test_fit_settings_that_cannot_train_are_refused_by_the_config():
    from steerkit.focus import FocusTrainConfig

    for bad, match in (({"epochs": 0}, "epochs must be > 0"), ({"lr": 0.0}, "lr must be > 0"),
                       ({"val_disagreeing": -1}, "val_disagreeing must be >= 0")):
        with pytest.raises(ValueError, match=match):
            FocusTrainConfig(**bad).check()


@pytest.mark.parametrize("text, match", [("{not json", "not valid JSON"), ('{"labels": ["a", "b"]}', "missing"),
                                         ("[1, 2]", "expected a JSON object")])
def test_a_malformed_task_file_is_named(text, match, tmp_path):
    from steerkit.focus import FocusTask

    path = tmp_path / "task.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{path}: .*{match}"):
        FocusTask.load(path)


def _vector_file(path, entries, tensors=None):
    tensors = tensors or {"block_out.0.theta": torch.randn(1, 8)}
    meta = {"format": "steerkit.vectors", "format_version": "1", "attributes": json.dumps(["a"]),
            "gate_mode": "none", "entries": json.dumps(entries)}
    save_file(tensors, str(path), metadata=meta)
    return path


@pytest.mark.parametrize("entries", [[["block_out"]], [["block_out", "0"]], "block_out", [["nowhere", 0]]])
def test_damaged_entries_metadata_names_the_file(entries, tmp_path):
    path = _vector_file(tmp_path / "v.safetensors", entries)
    with pytest.raises(ValueError, match=str(path)):
        SteeringVectors.load(path)


def test_an_integer_gate_in_a_vector_file_is_refused_not_cast(tmp_path):
    path = tmp_path / "v.safetensors"
    meta = {"format": "steerkit.vectors", "format_version": "1", "attributes": json.dumps(["a"]),
            "gate_mode": "sigmoid", "entries": json.dumps([["block_out", 0]])}
    save_file({"block_out.0.theta": torch.randn(1, 8), "block_out.0.gate_w": torch.ones(1, 8, dtype=torch.int32)},
              str(path), metadata=meta)
    with pytest.raises(ValueError, match=rf"{path}: block_out layer 0: gate_w must be a floating-point tensor, "
                                         "got torch.int32"):
        SteeringVectors.load(path)


def test_help_and_argument_errors_import_neither_torch_nor_transformers():
    code = ("import sys\nfrom steerkit import cli\n"
            "try:\n    cli.main(['fit', '--epochs', '0'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "argument --epochs" in out.stderr


def test_python_dash_m_is_the_same_command():
    out = subprocess.run([sys.executable, "-m", "steerkit", "demo", "--prompts", "0"], capture_output=True, text=True)
    assert out.returncode == 2 and "argument --prompts: expected an integer >= 1, got 0" in out.stderr
