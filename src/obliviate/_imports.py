"""Objects from the user's own code, named by an import path ``package.module:attribute``.

One resolver for every plug-in point (model factories now; trainers, losses and datasets can use it too).
Each failure is one line naming the path, the problem and the fix.

>>> resolve("math:sqrt")(16.0)
4.0
>>> resolve("os.path:join")("runs", "a")
'runs/a'
>>> resolve("json:JSONDecoder.decode")  # doctest: +ELLIPSIS
<function JSONDecoder.decode at ...>
>>> resolve("math.sqrt")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
obliviate.errors.ConfigError: 'math.sqrt' is not an import path: write it as package.module:attribute, ...
>>> resolve("math:nope")
Traceback (most recent call last):
...
obliviate.errors.ConfigError: 'math:nope': module 'math' has no attribute 'nope'; check the name after the colon
>>> resolve("math:pi")
Traceback (most recent call last):
...
obliviate.errors.ConfigError: 'math:pi' is not callable (it is of type float); name a function or class
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from .errors import ConfigError

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_PATTERN = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*$")


def is_import_path(text: str) -> bool:
    """Whether ``text`` has the shape of an import path (a colon between a module and an attribute).

    >>> is_import_path("mypkg.models:build"), is_import_path("lenet5")
    (True, False)
    """
    return ":" in text


def check_import_path(text: str, example: str = "mypkg.models:build") -> str:
    """``text`` if it is a well-formed ``package.module:attribute`` path; else a :class:`ConfigError`."""
    if not isinstance(text, str) or not _PATTERN.match(text):
        raise ConfigError(f"{text!r} is not an import path: write it as package.module:attribute, "
                          f"e.g. {example}")
    return text


def resolve(path: str, example: str = "mypkg.models:build") -> Callable[..., Any]:
    """Import ``package.module`` and return the callable named after the colon (dots reach into it)."""
    obj = resolve_object(path, example)
    if not callable(obj):
        raise ConfigError(f"{path!r} is not callable (it is of type {type(obj).__name__}); name a function or "
                          f"class")
    return obj  # type: ignore[no-any-return]


def resolve_object(path: str, example: str = "mypkg.models:build") -> Any:
    """Import ``package.module`` and return the object named after the colon, callable or not.

    >>> resolve_object("math:pi") > 3
    True
    """
    module_name, _, attribute = check_import_path(path, example).partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        top = missing.split(".")[0]
        raise ConfigError(f"{path!r}: cannot import module {missing!r} (no module named {missing!r}); add the "
                          f"folder that holds `{top}` to PYTHONPATH (e.g. PYTHONPATH=. when it is in the "
                          f"current folder), or install it") from None
    except Exception as exc:  # the user's module failed while importing: say where
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise ConfigError(f"{path!r}: importing module {module_name!r} failed with {type(exc).__name__}"
                          f"{': ' + detail if detail else ''}; fix that module") from exc
    reached = module_name
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{path!r}: {'module' if reached == module_name else 'object'} {reached!r} has no "
                              f"attribute {part!r}; check the name after the colon")
        obj = getattr(obj, part)
        reached = f"{reached}.{part}"
    return obj
