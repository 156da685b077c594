"""The three URL styles: building then parsing gives back path and version."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bustware.styles import FilenameStyle, QueryStyle, SegmentStyle, make_style

# Name parts that stress the filename rule: several dots, leading dots,
# unicode, spaces, '%', and parts that already look like versions.
name_part = st.one_of(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from(["app", "min", "css", "js", "map", "tar", "gz", "%41", "a b", "é",
                     "3f2a1b9c04d1", "12345678", "..", ".", ""]),
)
file_name = (
    st.lists(name_part, min_size=1, max_size=5)
    .map(".".join)
    .filter(lambda n: n not in ("", ".", "..") and n.strip(".") != "")
)
logical_path = st.lists(file_name, min_size=1, max_size=4).map("/".join)
version = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


@pytest.mark.parametrize("style", [FilenameStyle(), SegmentStyle(), QueryStyle("v")])
@settings(max_examples=300, deadline=None)
@given(path=logical_path, ver=version)
def test_parse_inverts_build(style, path, ver):
    url_path, query = style.build(path, ver)
    assert style.parse(url_path, query) == (path, ver)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("css/app.css", "css/app.V1.css"),
        ("jquery.min.js", "jquery.min.V1.js"),
        ("app.css.map", "app.css.V1.map"),
        ("archive.tar.gz", "archive.tar.V1.gz"),
        ("LICENSE", "LICENSE.V1"),
        (".well-known.json", ".well-known.V1.json"),
        (".htaccess", ".htaccess.V1"),
        ("app.12345678.css", "app.12345678.V1.css"),
        ("dir.d/noext", "dir.d/noext.V1"),
    ],
)
def test_filename_placement(name, expected):
    assert FilenameStyle().build(name, "V1") == (expected, "")
    assert FilenameStyle().parse(expected, "") == (name, "V1")


def test_segment_and_query_placement():
    assert SegmentStyle().build("css/app.css", "r42") == ("r42/css/app.css", "")
    assert QueryStyle("ver").build("css/app.css", "abc") == ("css/app.css", "ver=abc")
    assert QueryStyle("ver").parse("css/app.css", "x=1&ver=abc") == ("css/app.css", "abc")


@pytest.mark.parametrize(
    ("style", "url_path", "query"),
    [
        (FilenameStyle(), "app", ""),            # no dot: no version
        (FilenameStyle(), "app..css", ""),       # empty version
        (SegmentStyle(), "css", ""),             # no slash
        (SegmentStyle(), "a.b/app.css", ""),     # a dot cannot be in a version
        (QueryStyle("v"), "app.css", ""),
        (QueryStyle("v"), "app.css", "v=a/b"),
    ],
)
def test_parse_rejects(style, url_path, query):
    assert style.parse(url_path, query) is None


def test_filename_version_is_second_to_last_component():
    # The rule is positional, whatever the component looks like; the
    # middleware then checks the index for the name.
    assert FilenameStyle().parse("app.v.1.css", "") == ("app.v.css", "1")


def test_make_style_errors():
    with pytest.raises(ValueError, match="unknown style='hash'"):
        make_style("hash")
    with pytest.raises(ValueError, match="query_param='q' only applies to style='query'"):
        make_style("filename", "q")
    with pytest.raises(ValueError, match="invalid query_param='a b'"):
        make_style("query", "a b")
