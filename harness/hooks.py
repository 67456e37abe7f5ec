"""Loading a `module:function` a suite or config names (rule functions, routing hooks, push hooks),
one way everywhere: a Python file next to the file that names it, else an importable module. Each
file is loaded once per process under a name of its own; any failure is a ConfigError naming the
setting, never a traceback."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError


def load_hook(ref: str, *, what: str, base_dir: Path | None = None) -> Callable:
    """The function `ref` names; `what` is the setting, for messages ("human.push.hook")."""
    module, _, func = (ref or "").partition(":")
    if not module or not func:
        raise ConfigError(f"{what}: expected 'module:function', found {ref!r}")
    file = (base_dir / Path(*module.split("."))).with_suffix(".py") if base_dir else None
    try:
        if file is not None and file.is_file():
            unique = f"holdout_hook_{abs(hash(str(file.resolve())))}_{module.replace('.', '_')}"
            mod = sys.modules.get(unique)
            if mod is None:
                spec = importlib.util.spec_from_file_location(unique, file)
                mod = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(mod)
                sys.modules[unique] = mod
        else:
            mod = importlib.import_module(module)
        return getattr(mod, func)
    except (ImportError, AttributeError, ValueError) as e:
        where = f" (looked for {file} and an importable module)" if file else ""
        raise ConfigError(f"{what}: cannot load {ref!r}: {type(e).__name__}{where}") from None
    except Exception as e:
        raise ConfigError(
            f"{what}: {ref!r}: importing {file or module} raised {type(e).__name__}"
        ) from None
