"""Decoding a file to search it for references, and back to bytes.

A stylesheet is decoded as UTF-8 unless it starts with a BOM or an
``@charset "...";`` rule naming another ASCII-compatible encoding (CSS
Syntax section 3.2). Undecodable bytes are carried through unchanged
(``surrogateescape``), so a file in any ASCII-compatible encoding
round-trips byte for byte. UTF-16 and UTF-32 files (BOM) are not rewritten.
Shared by the CSS and script finders (bustware.cssrefs, bustware.scriptrefs)
and bustware.references.
"""

from __future__ import annotations

import codecs

__all__ = ["RAW_UTF8", "UNICODE_BOMS", "Undecodable", "decode", "utf8", "utf8_len"]

UNICODE_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE,
                 codecs.BOM_UTF16_BE)


class Undecodable(Exception):
    pass


#: What decode() returns as the codec of a UTF-8 stylesheet it decoded as
#: latin-1: one character per byte, bytes >= 0x80 standing for themselves.
#: The tokenizer treats every character >= U+0080 alike (a name character),
#: so it finds the same tokens at the same places in that text as in the
#: decoded one; only a reference's URL is decoded, from its bytes
#: (_utf8_value). The text then costs one byte per byte of the file, where
#: decoding would cost two (any non-Latin-1 character) or four (any emoji)
#: for the whole file.
RAW_UTF8 = "raw-utf-8"


def utf8(raw: str) -> str:
    """Text that decode() read as RAW_UTF8, decoded."""
    return raw.encode("latin-1").decode("utf-8", "surrogateescape")


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def decode(data: bytes, kind: str) -> tuple[str, str]:
    """Text and the (ASCII-compatible) codec it was decoded with."""
    if data.startswith(UNICODE_BOMS):
        raise Undecodable("a UTF-16/UTF-32 file (byte order mark) is not rewritten; "
                           "save it as UTF-8")
    encoding = "utf-8"
    if kind == "css" and not data.startswith(codecs.BOM_UTF8) and data.startswith(b'@charset "'):
        end = data.find(b'";', 10, 80)
        if end > 0:
            label = data[10:end].decode("ascii", "replace").strip().lower()
            try:
                name = codecs.lookup(label).name
            except LookupError:
                name = "utf-8"
            # CSS Syntax 3.2: a UTF-16 label in @charset means UTF-8.
            if not name.startswith(("utf-16", "utf-32", "utf_16", "utf_32")):
                encoding = name
    if encoding != "utf-8":
        try:
            text = data.decode(encoding, "surrogateescape")
            if text.encode(encoding, "surrogateescape") == data and "@charset".encode(
                    encoding) == b"@charset":
                return text, encoding
        except (UnicodeError, LookupError):
            pass
        encoding = "utf-8"  # fall back: UTF-8 with surrogateescape always round-trips
    if kind == "css":
        return data.decode("latin-1"), RAW_UTF8
    return data.decode("utf-8", "surrogateescape"), encoding
