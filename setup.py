"""Builds steerkit's compiled extensions with ninja, without importing torch.

* ``steerkit._C``: the CPU kernels (C++17, OpenMP). Always built.
* ``steerkit._C_cuda``: the CUDA kernels. Built when a CUDA compiler is found.
  ``STEERKIT_CUDA=auto`` (default) builds it when nvcc is there and skips it with a warning
  otherwise; ``STEERKIT_CUDA=1`` makes a missing or failing nvcc an error; ``STEERKIT_CUDA=0``
  never builds it. ``STEERKIT_CUDA_ARCHS`` (default ``80;90``) lists the SM architectures.

Both modules are plain C++/CUDA on raw pointers behind pybind11 (see DESIGN.md), so one build works
with any torch version, and cudart is linked statically so the CUDA module imports on a machine
without a GPU or a CUDA runtime.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class NinjaExtension(Extension):
    def __init__(self, name: str, sources: list[str], cuda: bool = False):
        super().__init__(name, sources=sources)
        self.cuda = cuda


def find_nvcc() -> str | None:
    """$CUDA_HOME (or $CUDA_PATH) when set, and then only there; else PATH, else /usr/local/cuda."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        home = os.environ.get(var)
        if home:
            nvcc = Path(home) / "bin" / "nvcc"
            return str(nvcc) if nvcc.exists() else None
    found = shutil.which("nvcc")
    if found:
        return found
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.exists() else None


def find_cuda_home(nvcc: str) -> tuple[Path, Path]:
    """The toolkit root and the folder holding cuda_runtime_api.h (nvcc may be a wrapper script)."""
    roots = [Path(os.environ[v]) for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    roots += [Path(nvcc).resolve().parent.parent, Path("/usr/local/cuda")]
    for root in roots:
        for inc in [root / "include", *sorted(root.glob("targets/*/include"))]:
            if (inc / "cuda_runtime_api.h").exists():
                return root.resolve(), inc
    raise SystemExit(f"found nvcc at {nvcc} but no CUDA headers (cuda_runtime_api.h) under {roots}; "
                     "set CUDA_HOME to the toolkit's root")


def cuda_mode() -> str:
    mode = os.environ.get("STEERKIT_CUDA", "auto").strip().lower()
    if mode not in ("auto", "0", "1"):
        raise SystemExit(f"STEERKIT_CUDA must be 'auto', '0' or '1', got {mode!r}")
    return mode


def cuda_archs() -> list[str]:
    raw = os.environ.get("STEERKIT_CUDA_ARCHS", "80;90")
    archs = [a.strip().replace(".", "") for a in raw.replace(",", ";").split(";") if a.strip()]
    for a in archs:
        if not a.rstrip("a").isdigit():
            raise SystemExit(f"STEERKIT_CUDA_ARCHS: {a!r} is not an SM architecture like 80 or 90a")
    return archs


def ninja_bin() -> str:
    try:
        import ninja  # the PyPI package, a build requirement

        return str(Path(ninja.BIN_DIR) / "ninja")
    except ImportError:
        found = shutil.which("ninja")
        if not found:
            raise SystemExit("steerkit's build needs ninja: pip install ninja")
        return found


def esc(p: str | Path) -> str:
    return str(p).replace("$", "$$").replace(" ", "$ ").replace(":", "$:")


class NinjaBuildExt(build_ext):
    """Compiles every extension through one generated build.ninja (parallel, incremental)."""

    def run(self):
        self.build_info = {"cpu": {"built": False}, "cuda": {"built": False}}
        mode = cuda_mode()
        nvcc = find_nvcc() if mode != "0" else None
        keep = []
        for ext in self.extensions:
            if getattr(ext, "cuda", False):
                if mode == "0":
                    self.build_info["cuda"]["reason"] = "disabled at build time (STEERKIT_CUDA=0)"
                    continue
                if nvcc is None:
                    msg = ("no CUDA compiler found (looked at $CUDA_HOME, $CUDA_PATH, PATH and "
                           "/usr/local/cuda/bin/nvcc)")
                    if mode == "1":
                        raise SystemExit(f"STEERKIT_CUDA=1 but {msg}; install the CUDA toolkit or "
                                         "set STEERKIT_CUDA=auto")
                    self.warn(f"steerkit: {msg}; building without the CUDA extension")
                    self.build_info["cuda"]["reason"] = f"not built: {msg}"
                    continue
            keep.append(ext)
        self.extensions = keep
        self.nvcc = nvcc
        super().run()
        out_dir = Path(self.get_ext_fullpath("steerkit._C")).parent
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "_build_info.json").write_text(json.dumps(self.build_info, indent=1))

    def build_extensions(self):
        for ext in list(self.extensions):  # a copy: a failed optional extension is dropped below
            self.build_extension(ext)

    def build_extension(self, ext):
        try:
            self._build_with_ninja(ext)
        except subprocess.CalledProcessError as err:
            if getattr(ext, "cuda", False) and cuda_mode() == "auto":
                self.warn(f"steerkit: the CUDA extension failed to build ({err}); continuing without "
                          "it. Set STEERKIT_CUDA=1 to make this an error, 0 to skip it.")
                self.build_info["cuda"]["reason"] = f"not built: compiler failed ({err})"
                self.extensions.remove(ext)  # so nothing tries to copy its missing output
                return
            raise

    def _build_with_ninja(self, ext):
        import pybind11

        build_dir = Path(self.build_temp).resolve() / ext.name.replace(".", "_")
        build_dir.mkdir(parents=True, exist_ok=True)
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        cxx = os.environ.get("CXX", "c++")
        includes = [pybind11.get_include(), sysconfig.get_paths()["include"], str(ROOT / "csrc")]
        inc = " ".join(f"-I{esc(i)}" for i in includes)
        cxxflags = f"-O3 -std=c++17 -fPIC -fvisibility=hidden -Wall {inc}"
        ldflags = "-shared"
        if sys.platform == "darwin":
            ldflags += " -undefined dynamic_lookup"
        lines = ["ninja_required_version = 1.3", f"cxx = {cxx}"]
        info = {"built": True, "compiler": cxx}
        if ext.cuda:
            cuda_home, cuda_inc = find_cuda_home(self.nvcc)
            archs = cuda_archs()
            gencode = " ".join(
                f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs
            ) + f" -gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}"
            cxxflags += f" -I{esc(cuda_inc)} -DSTEERKIT_CUDA_ARCHS='\"{';'.join(archs)}\"'"
            nvccflags = (f"-O3 -std=c++17 {gencode} -Xcompiler=-fPIC -Xcompiler=-fvisibility=hidden "
                         f"--expt-relaxed-constexpr {inc}")
            libdir = next((d for d in (cuda_home / "lib64", cuda_home / "lib", cuda_home / "targets" /
                                       "x86_64-linux" / "lib") if (d / "libcudart_static.a").exists()),
                          cuda_home / "lib64")
            ldflags += f" -L{esc(libdir)}"
            libs = "-lcudart_static -ldl -lrt -lpthread"
            lines += [f"nvcc = {esc(self.nvcc)}", f"nvccflags = {nvccflags}",
                      "rule nvcc", "  command = $nvcc $nvccflags -c $in -o $out", "  description = NVCC $out"]
            info.update(nvcc=self.nvcc, nvcc_version=_nvcc_version(self.nvcc), archs=archs)
        else:
            cxxflags += " -fopenmp"
            ldflags += " -fopenmp"
            libs = ""
        lines += [f"cxxflags = {cxxflags}", f"ldflags = {ldflags}", f"libs = {libs}",
                  "rule cxx", "  command = $cxx $cxxflags -c $in -o $out", "  description = CXX $out",
                  "rule link", "  command = $cxx $in $ldflags $libs -o $out", "  description = LINK $out"]
        objects = []
        for src in ext.sources:
            src_path = (ROOT / src).resolve()
            obj = build_dir / (src.replace("/", "_") + ".o")
            rule = "nvcc" if src.endswith(".cu") else "cxx"
            lines.append(f"build {esc(obj)}: {rule} {esc(src_path)}")
            objects.append(esc(obj))
        lines.append(f"build {esc(target)}: link {' '.join(objects)}")
        (build_dir / "build.ninja").write_text("\n".join(lines) + "\n")
        jobs = os.environ.get("MAX_JOBS") or str(os.cpu_count() or 1)
        subprocess.run([ninja_bin(), "-C", str(build_dir), "-j", jobs], check=True)
        self.build_info["cuda" if ext.cuda else "cpu"] = info


def _nvcc_version(nvcc: str) -> str:
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=True).stdout
        return out.strip().splitlines()[-1]
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


setup(
    ext_modules=[
        NinjaExtension("steerkit._C", ["csrc/cpu/gated_steer.cpp", "csrc/cpu/bindings.cpp"]),
        NinjaExtension("steerkit._C_cuda", ["csrc/cuda/gated_steer.cu", "csrc/cuda/steer_add_rmsnorm.cu",
                                                "csrc/cuda/bindings.cpp"], cuda=True),
    ],
    cmdclass={"build_ext": NinjaBuildExt},
)
