"""Precompressed variants written by bustware.compress."""

from __future__ import annotations

import gzip
import io
import os
import random
import sys
from pathlib import Path

import brotli
import pytest
import zstandard

from bustware import compress
from bustware.compress import (
    ENCODINGS,
    CodecUnavailable,
    compress_bytes,
    compress_file,
    compress_stream,
    is_compressible,
)

TEXT = b"".join(b".rule-%d { margin: %dpx; color: red }\n" % (i, i % 13) for i in range(800))
DECODE = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
}


def listing(directory) -> list[str]:
    return sorted(os.listdir(directory))


def test_variants_decode_to_the_file_and_are_named_beside_it(tmp_path):
    src = tmp_path / "app.css"
    src.write_bytes(TEXT)
    written = compress_file(src)
    assert written == {e: str(src) + s for e, s in ENCODINGS.items()}
    assert listing(tmp_path) == ["app.css", "app.css.br", "app.css.gz", "app.css.zst"]
    for encoding, path in written.items():
        data = Path(path).read_bytes()
        assert DECODE[encoding](data) == TEXT
        assert data == compress_bytes(TEXT, encoding)


def test_streaming_gives_the_same_bytes(tmp_path):
    for encoding in ENCODINGS:
        out = io.BytesIO()
        compress_stream(io.BytesIO(TEXT), out, encoding=encoding, size=len(TEXT))
        assert out.getvalue() == compress_bytes(TEXT, encoding)
        unsized = io.BytesIO()
        compress_stream(io.BytesIO(TEXT), unsized, encoding=encoding)
        assert DECODE[encoding](unsized.getvalue()) == TEXT


def test_output_is_deterministic(tmp_path):
    src = tmp_path / "app.js"
    src.write_bytes(TEXT)
    first = {e: Path(p).read_bytes() for e, p in compress_file(src).items()}
    os.utime(src, (1, 1))  # a different mtime must not change the gzip bytes
    second = {e: Path(p).read_bytes() for e, p in compress_file(src).items()}
    assert first == second
    for encoding in ENCODINGS:
        assert compress_bytes(TEXT, encoding) == compress_bytes(TEXT, encoding)
    # gzip header: no FNAME flag, MTIME zero (RFC 1952 section 2.3).
    header = first["gzip"][:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] == 0, "flags: no file name, no comment, no extra"
    assert header[4:8] == b"\x00\x00\x00\x00"
    assert b"app.js" not in first["gzip"]


def test_variants_that_save_less_than_five_percent_are_not_kept(tmp_path):
    noise = tmp_path / "noise.txt"
    noise.write_bytes(random.Random(1).randbytes(20000))
    assert compress_file(noise) == {}
    assert listing(tmp_path) == ["noise.txt"]
    empty = tmp_path / "empty.css"
    empty.write_bytes(b"")
    assert compress_file(empty) == {}
    assert listing(tmp_path) == ["empty.css", "noise.txt"]


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_the_saving_threshold_is_exact(tmp_path, encoding):
    src = tmp_path / "half.txt"
    # Half noise, half text: a saving somewhere in the middle.
    data = random.Random(2).randbytes(3000) + TEXT[:3000]
    src.write_bytes(data)
    saving = 1 - len(compress_bytes(data, encoding)) / len(data)
    assert 0.1 < saving < 0.9
    assert compress_file(src, [encoding], min_saving=saving + 0.001) == {}
    assert listing(tmp_path) == ["half.txt"]
    assert encoding in compress_file(src, [encoding], min_saving=saving - 0.001)


@pytest.mark.parametrize("name", ["pic.png", "pic.JPG", "font.woff2", "font.woff", "a.webp",
                                  "a.avif", "clip.mp4", "app.css.gz", "app.css.br",
                                  "app.css.zst", "bundle.zip", "song.mp3"])
def test_compressed_formats_are_skipped(tmp_path, name):
    src = tmp_path / name
    src.write_bytes(TEXT)  # compressible bytes: only the name decides
    assert not is_compressible(src)
    assert compress_file(src) == {}
    assert listing(tmp_path) == [name]


def test_compressible_formats(tmp_path):
    for name in ("app.css", "app.js", "app.mjs", "index.html", "logo.svg", "app.wasm",
                 "data.json", "app.js.map", "LICENSE", "favicon.ico"):
        assert is_compressible(name), name


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    src = tmp_path / "app.css"
    src.write_bytes(TEXT)
    old = tmp_path / "app.css.gz"
    old.write_bytes(b"an old variant")
    with open(old, "rb") as reader:
        compress_file(src, ["gzip"])
        # Replaced, not rewritten in place: a reader of the old file still
        # reads the whole old file.
        assert reader.read() == b"an old variant"
    assert gzip.decompress(old.read_bytes()) == TEXT
    assert listing(tmp_path) == ["app.css", "app.css.gz"]


def test_a_failure_leaves_the_old_variant_and_no_temporary_file(tmp_path, monkeypatch):
    src = tmp_path / "app.css"
    src.write_bytes(TEXT)
    (tmp_path / "app.css.br").write_bytes(b"previous")

    def broken(src_file, out, *, encoding, size):
        out.write(b"half a variant")
        raise OSError("disk full")

    monkeypatch.setattr(compress, "_compress_stream", broken)
    with pytest.raises(OSError, match="disk full"):
        compress_file(src, ["br"])
    assert listing(tmp_path) == ["app.css", "app.css.br"]
    assert (tmp_path / "app.css.br").read_bytes() == b"previous"


def test_a_stale_variant_is_rewritten_never_left_stale_nor_deleted(tmp_path):
    src = tmp_path / "app.js"
    src.write_bytes(TEXT)
    compress_file(src, ["gzip"])
    new = random.Random(3).randbytes(5000)  # now incompressible
    src.write_bytes(new)
    # Left as it was, the old variant would be served for the new file; and
    # nobody asked for it to be deleted. So it is rewritten from the new bytes.
    assert compress_file(src, ["gzip"]) == {"gzip": str(src) + ".gz"}
    assert gzip.decompress((tmp_path / "app.js.gz").read_bytes()) == new
    assert listing(tmp_path) == ["app.js", "app.js.gz"]
    # A file that never had a variant still gets none below the 5% saving.
    other = tmp_path / "other.js"
    other.write_bytes(new)
    assert compress_file(other, ["gzip"]) == {}


def test_variant_gets_the_permissions_of_its_source(tmp_path):
    src = tmp_path / "app.css"
    src.write_bytes(TEXT)
    os.chmod(src, 0o640)
    for path in compress_file(src).values():
        assert os.stat(path).st_mode & 0o777 == 0o640


@pytest.mark.parametrize(("encoding", "module", "extra"),
                         [("br", "brotli", "brotli"), ("zstd", "zstandard", "zstd")])
def test_missing_codec_is_a_clear_error_and_nothing_is_written(tmp_path, monkeypatch,
                                                               encoding, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # makes "import module" fail
    src = tmp_path / "app.css"
    src.write_bytes(TEXT)
    with pytest.raises(CodecUnavailable) as info:
        compress_file(src, ["gzip", encoding])
    message = str(info.value)
    assert f"pip install 'bustware[{extra}]'" in message
    assert encoding in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert listing(tmp_path) == ["app.css"]  # not even the gzip variant
    with pytest.raises(CodecUnavailable):
        compress_bytes(TEXT, encoding)
    assert compress_file(src, ["gzip"]) == {"gzip": str(src) + ".gz"}  # gzip needs nothing


def test_bad_arguments_are_named(tmp_path):
    src = tmp_path / "app.css"
    src.write_bytes(TEXT)
    with pytest.raises(ValueError, match=r"'deflate'.*br, gzip, zstd"):
        compress_file(src, ["deflate"])
    with pytest.raises(TypeError, match="'br'"):
        compress_file(src, "br")
    with pytest.raises(ValueError, match=r"min_saving=1\.5"):
        compress_file(src, min_saving=1.5)
    with pytest.raises(FileNotFoundError, match=r"nope\.css"):
        compress_file(tmp_path / "nope.css")
    with pytest.raises(ValueError, match="'identity'"):
        compress_bytes(TEXT, "identity")
    assert listing(tmp_path) == ["app.css"]
