"""Attributes of a package imported on first use (PEP 562), so ``steerkit --help`` and argument errors
need neither torch nor transformers.

A public name never shares its name with a submodule: importing the submodule would rebind the
package attribute to it (``steerkit.patch`` the function, not the module), hence ``patching.py``,
``sysinfo.py``, ``trainer.py`` and ``evaluation.py``."""
from __future__ import annotations

import importlib


def lazy(package: str, names: dict[str, str]):
    """``__getattr__`` and ``__dir__`` for ``package``. ``names``: public name -> the relative module
    that defines it, or ``"."`` + name for a submodule exposed as itself."""
    def __getattr__(name: str):
        where = names.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(where, package)
        value = module if where == "." + name else getattr(module, name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__():
        return sorted(names)

    return __getattr__, __dir__
