"""The Triton kernels live in the top-level ``kernels/`` (the project's layout) without an ``__init__.py``,
and import as ``steerkit.kernels``; run from the repository root, ``import kernels`` still gets the PyPI
package that transformers 5.x imports (or, where it is not installed, no code of ours)."""
import importlib.metadata
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run_from_root(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_kernels_folder_is_not_a_regular_package():
    assert (ROOT / "kernels" / "gated_steer.py").is_file()
    assert not (ROOT / "kernels" / "__init__.py").exists()


def test_import_kernels_from_the_repo_root_is_never_ours():
    where = _run_from_root("import sys; sys.path.insert(0, ''); import kernels; print(getattr(kernels, '__file__', None))")
    try:
        importlib.metadata.version("kernels")
    except importlib.metadata.PackageNotFoundError:  # not installed: at most an empty namespace, no code of ours
        assert where == "None", where
    else:  # installed (transformers 5.x depends on it): the regular package wins over our folder
        assert where != "None" and not Path(where).resolve().is_relative_to(ROOT / "kernels"), where


def test_steerkit_kernels_imports_from_the_kernels_folder():
    where = _run_from_root("import steerkit.kernels.gated_steer as k, steerkit.kernels.two_gemm, "
                           "steerkit.kernels.steer_add_rmsnorm; print(k.__file__)")
    assert Path(where).name == "gated_steer.py"
    # an editable install or a checkout reads the kernels folder itself; a built install, its copy
    assert Path(where).resolve().parent == (ROOT / "kernels") or "site-packages" in where, where
