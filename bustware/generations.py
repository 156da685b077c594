"""Generations: the rules by which one manifest follows another.

A build makes a new generation only when a URL changed; the outgoing one is
kept, as the files whose version the new one changes or drops, up to
``keep`` of them (newest first), with the objects holding their bytes.
Objects only the replaced manifest uses are *retired*: kept one build longer
for the processes still serving it. ``prune`` drops earlier generations by
count and age. Pure functions on manifest dicts: the store is the caller's.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import manifest as mf
from .about import __version__

__all__ = ["Retirement", "next_generation", "parse_age", "retire", "select"]


def next_generation(old: dict | None, files: dict, settings: dict, keep: int, *,
                    stored: bool | None = None) -> dict:
    """The manifest that follows ``old``. ``stored``: whether the store
    holds the current generation's bytes (default: with ``keep > 0``)."""
    built_at = _now_iso()
    table = {p: (r["version"], r["digest"]) for p, r in files.items()}
    if old is not None:
        old_table = {p: (r["version"], r["digest"]) for p, r in old["files"].items()}
        same = old_table == table and old["settings"] == settings
    else:
        same = False
    stored = keep > 0 if stored is None else stored
    if old is None:
        generation, previous = 1, []
    elif same:
        # Nothing a URL names changed: the same generation, kept as it was
        # (a rebuild of an unchanged tree writes the same manifest).
        generation, built_at, previous = old["generation"], old["built_at"], old["previous"]
    else:
        generation = old["generation"] + 1
        previous = list(old["previous"])
        if old["stored"] and keep > 0:
            previous.insert(0, _archive(old, files))
    return {
        "schema": mf.SCHEMA,
        "schema_version": mf.SCHEMA_VERSION,
        "generator": f"bustware {__version__}",
        "settings": settings,
        "keep": keep,
        "generation": generation,
        "built_at": built_at,
        "stored": stored,
        "files": files,
        "previous": previous[:keep],
    }


def _archive(old: dict, files: dict) -> dict:
    """The outgoing generation, as the files whose version the new one
    changes or drops: exactly the old URLs that stop being current."""
    out = {}
    for path, rec in old["files"].items():
        new = files.get(path)
        if new is not None and new["version"] == rec["version"]:
            continue
        served = rec.get("served")
        entry: dict[str, Any] = {
            "version": rec["version"], "digest": rec["digest"],
            "size": served["size"] if served is not None else rec["size"],
            "mtime_ns": rec["mtime_ns"],
        }
        variants = {e: {"object": v["object"], "size": v["size"]}
                    for e, v in rec.get("variants", {}).items() if "object" in v}
        if variants:
            entry["variants"] = variants
        out[path] = entry
    return {"generation": old["generation"], "built_at": old["built_at"], "files": out}


def _now_iso() -> str:
    # SOURCE_DATE_EPOCH (reproducible-builds.org) makes the time part of a
    # reproducible build too.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = int(epoch) if epoch and epoch.isdigit() else int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _parse_iso(text: str) -> float:
    import calendar

    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))



@dataclass(frozen=True)
class Retirement:
    """What a new manifest does with the objects of the one it replaces."""

    #: Objects the new manifest names.
    used: set[str]
    #: Objects only the replaced manifest uses: kept for its processes until
    #: the next build or ``prune``, listed under "retired".
    retired: set[str]
    #: What the replaced manifest had retired and the new one does not need:
    #: deletable once the new manifest is written.
    released: set[str]
    #: Every object the new manifest, the replaced one or the retired name.
    needed: set[str]

    def deletable(self, created: set[str]) -> set[str]:
        """Of ``created`` (this build's new objects) and the released ones,
        those nothing kept names."""
        return (created | self.released) - self.needed


def retire(old: dict | None, data: dict, new_generation: bool) -> Retirement:
    """Processes loaded from the old manifest serve its objects until they
    are reloaded: keep them one build longer (or until `prune`), listed so
    that the next build knows it may delete them."""
    used = mf.referenced_objects(data)
    replaced = mf.referenced_objects(old) if old is not None else set()
    retired_before = set(old.get("retired", ())) if old is not None else set()
    if old is not None and not new_generation:
        retired = retired_before - used  # the same build again: the same promise
        retired_before = set()
    else:
        retired = replaced - used
    needed = used | replaced | retired
    return Retirement(used, retired, retired_before - needed, needed)


_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` -> seconds."""
    m = _AGE.match(text.strip().lower())
    if m is None:
        raise ValueError(
            f"bustware: --older-than {text!r} is not an age; write a number and a unit: "
            "90s, 30m, 12h, 7d or 2w"
        )
    return float(m.group(1)) * _UNITS[m.group(2)]



def select(previous: Sequence[dict[str, Any]], keep: int | None, older_than: float | None,
           now: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``prune``'s rule: the earlier generations to keep and to drop, those
    beyond the ``keep`` newest, those built more than ``older_than`` seconds
    before ``now``; with both, only those that are both."""
    kept, dropped = [], []
    for i, gen in enumerate(previous):
        beyond = keep is not None and i >= keep
        try:
            old = older_than is not None and now - _parse_iso(gen["built_at"]) > older_than
        except ValueError:
            old = False  # an unreadable date is never a reason to delete
        drop = (beyond and old) if keep is not None and older_than is not None \
            else (beyond or old)
        (dropped if drop else kept).append(gen)
    return kept, dropped
