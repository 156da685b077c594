"""Unknown keyword arguments and option names: an error that names the
bad keyword and the closest valid one, raised from the public class the
user called (``Bustware``, ``BustwareASGI``, ``Assets``) rather than the
bare ``TypeError`` of an internal ``__init__``.

A leaf module (standard library only), so any module may use it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable
from typing import Any, Callable, TypeVar

__all__ = ["checked", "did_you_mean", "keyword_names"]

F = TypeVar("F", bound=Callable[..., Any])


def keyword_names(*callables: Callable) -> tuple[str, ...]:
    """The names ``callables`` accept as keyword arguments, in order, each
    once. A constructor made by :func:`checked` counts with what it passes
    on (its ``**options``)."""
    names: dict[str, None] = {}
    for func in callables:
        known = getattr(func, "accepted_keywords", None)
        if known is not None:
            names.update(dict.fromkeys(known))
            continue
        for param in inspect.signature(func).parameters.values():
            if param.name != "self" and param.kind in (
                    inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
                names[param.name] = None
    return tuple(names)


def did_you_mean(unknown: Iterable[str], valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the unknown names that are near a valid
    one, else ``""``: the text to put after the unknown names."""
    import difflib  # an error path: not loaded by `import bustware`

    valid = list(valid)
    pairs = []
    for name in unknown:
        # Case first: BUSTWARE_Style and Cache_Control are plain typos too.
        close = [v for v in valid if v.lower() == name.lower()]
        close = close or difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
        if close:
            pairs.append((name, close[0]))
    if not pairs:
        return ""
    if len(pairs) == 1:
        return f" (did you mean {pairs[0][1]!r}?)"
    return " (did you mean " + ", ".join(f"{v!r} for {n!r}" for n, v in pairs) + "?)"


def checked(*also: Callable) -> Callable[[F], F]:
    """Decorate an ``__init__`` so that a keyword argument it does not take
    (nor the callables in ``also``, which receive its ``**options``) is a
    ``TypeError`` naming the class called and the closest valid keyword.

    The valid names are read from the signatures once, here; each call
    costs one subset test of its keywords."""

    def decorate(init: F) -> F:
        names = keyword_names(init, *also)
        valid = frozenset(names)

        @functools.wraps(init)
        def wrapper(self, *args: Any, **kwargs: Any) -> Any:
            if not valid.issuperset(kwargs):
                unknown = sorted(set(kwargs) - valid)
                raise TypeError(
                    f"bustware: {type(self).__name__}() got an unexpected keyword argument "
                    f"{', '.join(map(repr, unknown))}{did_you_mean(unknown, names)}; "
                    f"it takes {', '.join(names)}"
                )
            return init(self, *args, **kwargs)

        wrapper.accepted_keywords = names  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
