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


def _steerkit_imports() -> dict[str, set[str]]:
    """steerkit's modules (dotted names) -> the steerkit modules each imports, anywhere in it (imports
    inside functions too: they are how a cycle hides). ``from package import name`` counts as importing
    the submodule where ``name`` is one, else the package."""
    import ast

    src = ROOT / "steerkit"
    mods = {}
    for p in src.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if p.is_relative_to(src / "kernels") or (src / "kernels").resolve() in p.resolve().parents:
            continue  # the Triton kernels: a folder of their own, importing no steerkit module
        package = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if package else parts)] = (p, package)
    edges = {m: set() for m in mods}
    for m, (p, package) in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = m.split(".") if package else m.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)] + ([node.module] if node.module else [])
                    full = ".".join(base)
                else:
                    full = node.module or ""
                targets = [f"{full}.{a.name}" if f"{full}.{a.name}" in mods else full for a in node.names]
            for t in targets:
                while t not in mods and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in mods and t != m:
                    edges[m].add(t)
    return edges


def test_no_steerkit_module_imports_back_into_a_cycle():
    edges = _steerkit_imports()
    assert {"steerkit.vectors", "steerkit.formats.gguf", "steerkit.hf.calls"} <= set(edges)
    assert "steerkit.formats.contents" in edges["steerkit.vectors"]  # the scan sees imports
    order, state = [], {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", "import cycle: " + " -> ".join(path[path.index(m):] + [m])
        state[m] = "open"
        for t in sorted(edges[m]):
            visit(t, path + [m])
        state[m] = "done"
        order.append(m)

    for m in sorted(edges):
        visit(m, [])
    # nothing in formats/ imports the vectors it reads and writes
    assert not any(t == "steerkit.vectors" for m in edges if m.startswith("steerkit.formats") for t in edges[m])


def test_every_package_folder_is_in_the_packages_that_install():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "steerkit").rglob("__init__.py")}
    assert folders | {"steerkit.kernels"} == listed
