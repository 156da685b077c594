"""Hostile HTTP input and operator mistakes (issue 11): Accept-Encoding cost
and memo size, ``prefix="/"``, headers from ``add_headers`` that bustware
sets itself, ``content_types=``, ``.svgz`` and ``.zstd`` files.

Cost is never timed here: it is counted as Python function calls, which
grow with the number of list elements when a parser loops over them in
Python, and stay constant when one regex pass does the work in C.
"""

from __future__ import annotations

import functools
import gc
import sys
import tracemalloc

import pytest

from bustware import http
from bustware.http import MAX_ACCEPT_ENCODING, EncodingNegotiator

OFFERS = ("br", "zstd", "gzip")


def python_calls(fn) -> int:
    """How many Python-level function calls ``fn()`` makes, itself included
    (pass a functools.partial: a lambda would count too)."""
    count = 0

    def profiler(frame, event, arg):
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profiler)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def hostile(length: int, coding: str = "c") -> str:
    """An Accept-Encoding list of short codings, cut to ``length``."""
    value = ", ".join(f"{coding}{i}" for i in range(length // 3))
    return value[:length]


@pytest.mark.parametrize("value", [
    hostile(MAX_ACCEPT_ENCODING),  # about 300 codings: read
    "br;q=0.5, " * 100 + "gzip",  # 100 elements naming a coding we offer
    ",\t" * 500,  # every character a separator
    hostile(8192),  # the 8 KB value of the issue: not read
    "gzip, " + "x" * (256 * 1024),
], ids=["1KB-300-codings", "100-offered", "separators", "8KB-4000-codings", "256KiB"])
def test_accept_encoding_cost_does_not_grow_with_the_value(value):
    # A fresh negotiator each time: the memo must not be what keeps it cheap.
    calls = python_calls(functools.partial(EncodingNegotiator().choose, value, OFFERS))
    # webob made more than 4,000 calls for 300 codings; the regex pass
    # makes a handful whatever the length.
    assert calls <= 12, (calls, len(value))


def test_a_browser_value_is_still_one_lookup_once_seen():
    neg = EncodingNegotiator()
    assert neg.choose("gzip, deflate, br, zstd", OFFERS) == "br"
    assert python_calls(functools.partial(neg.choose, "gzip, deflate, br, zstd", OFFERS)) == 1


def test_overlong_values_are_not_read_and_answer_identity(monkeypatch):
    read = []
    monkeypatch.setattr(http, "_negotiate", lambda h, o: read.append(h) or "gzip")
    neg = EncodingNegotiator()
    assert neg.choose("gzip" + " " * (MAX_ACCEPT_ENCODING - 4), OFFERS) == "gzip"
    assert neg.choose("gzip" + " " * (MAX_ACCEPT_ENCODING - 3), OFFERS) == "identity"
    assert len(read) == 1
    assert neg.choose(hostile(8192), OFFERS) == "identity"
    assert len(read) == 1


def test_memo_does_not_keep_long_values_alive():
    """1,000 distinct 256 KiB values (waitress and werkzeug's server let them
    through) used to keep 512 of them, 128 MiB, in the memo."""
    neg = EncodingNegotiator()
    neg.choose("gzip", OFFERS)  # the memo's own table exists before we measure
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1000):
            value = f"gzip;q=0.{i % 9 + 1}, x{i}-" + "y" * (256 * 1024)
            assert neg.choose(value, OFFERS) == "identity"
            del value
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 1024 * 1024, f"{kept / 2**20:.1f} MiB kept"
    # And by inspection: whatever it holds is bounded by count times length.
    for i in range(2000):
        neg.choose(f"gzip;q=0.{i % 9 + 1}, x{i}-" + "y" * (MAX_ACCEPT_ENCODING - 30), OFFERS)
    assert len(neg._memo) <= neg._maxsize
    assert sum(len(header) for header, _ in neg._memo) <= neg._maxsize * MAX_ACCEPT_ENCODING
