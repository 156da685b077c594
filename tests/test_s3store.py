"""The S3 store against a real S3 server (moto's, over HTTP): the store
contract, the bucket layout and CDN-origin keys, and the faults a network
store has (stopped, hanging, no bucket, access denied, a lost race)."""

from __future__ import annotations

import hashlib
import io
import time
import tracemalloc

import pytest
from s3server import admin_client, aws_env, moto_server, new_bucket, silent_server, use_env

from bustware.s3location import S3Location, parse_s3_url
from bustware.store import ManifestConflict, NoSuchObject, StoreError, StoreUnavailable

IMMUTABLE = "public, max-age=31536000, immutable"


def make_store(url: str, **kw):
    from bustware.s3store import S3Store

    return S3Store(url, **kw)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# The Store contract runs against S3Store in tests/test_store.py
# (STORE_FACTORIES); what follows is the S3 store's own.


def test_bytes_given_whole_that_are_not_the_digests_are_not_stored(s3_bucket):
    store = make_store(f"s3://{s3_bucket}/site")
    d = digest(b"what the build hashed")
    with pytest.raises(ValueError, match=d):
        store.put_object(d, b"what the file became", 20)
    assert not store.has_object(d)


# -- the store URL ---------------------------------------------------------


@pytest.mark.parametrize("url, location", [
    ("s3://my-bucket", S3Location("my-bucket", "")),
    ("s3://my-bucket/", S3Location("my-bucket", "")),
    ("s3://my.bucket-1/site/static/", S3Location("my.bucket-1", "site/static")),
    ("S3://abc/x", S3Location("abc", "x")),
])
def test_a_store_url_names_a_bucket_and_a_prefix(url, location):
    assert parse_s3_url(url) == location
    assert parse_s3_url(location.url) == location


@pytest.mark.parametrize("url, says", [
    ("my-bucket/site", "write s3://BUCKET/PREFIX"),
    ("https://my-bucket.s3.amazonaws.com/site", "write s3://BUCKET/PREFIX"),
    ("s3://", "names no bucket"),
    ("s3:///site", "names no bucket"),
    ("s3://My-Bucket/site", "write s3://my-bucket/site"),
    ("s3://a_b/site", "not a valid bucket name"),
    ("s3://ab/site", "not a valid bucket name"),
    ("s3://my-bucket/site//static", "write s3://my-bucket/site/static"),
    ("s3://my-bucket/site/../x", "write s3://my-bucket/site/x"),
    ("s3://my-bucket/site?region=eu-west-1", "AWS_ENDPOINT_URL"),
])
def test_a_bad_store_url_is_named_with_what_to_write(url, says):
    with pytest.raises(StoreError) as err:
        parse_s3_url(url)
    assert repr(url) in str(err.value)
    assert says in str(err.value)


def test_the_advice_for_a_bad_url_parses():
    for url in ("s3://My-Bucket/site", "s3://my-bucket/site//static"):
        with pytest.raises(StoreError) as err:
            parse_s3_url(url)
        advice = str(err.value).rpartition("write ")[2]
        assert parse_s3_url(advice).bucket == "my-bucket"


# -- layout, headers, CDN-origin keys -----------------------------------------


def test_the_bucket_layout_mirrors_the_local_store(s3_bucket, s3_admin):
    store = make_store(f"s3://{s3_bucket}/site")
    data = b"body{}"
    d = digest(data)
    store.put_object(d, data, len(data), content_type="text/css",
                     headers={"Cache-Control": IMMUTABLE, "X-Origin": "build"})
    store.write_manifest(b"{}", None)
    keys = sorted(o["Key"] for o in s3_admin.list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert keys == sorted([f"site/objects/{d[:2]}/{d}", "site/manifest.json"])
    head = s3_admin.head_object(Bucket=s3_bucket, Key=f"site/objects/{d[:2]}/{d}")
    assert head["ContentType"] == "text/css"
    assert head["CacheControl"] == IMMUTABLE
    assert head["Metadata"] == {"x-origin": "build"}
    manifest = s3_admin.head_object(Bucket=s3_bucket, Key="site/manifest.json")
    assert manifest["CacheControl"] == "no-cache"


def test_cdn_origin_keys_carry_the_served_headers(s3_bucket, s3_admin):
    from bustware.s3store import OriginStore

    store = make_store(f"s3://{s3_bucket}/site")
    assert isinstance(store, OriginStore)
    data = b"a{color:red}"
    d = digest(data)
    store.put_object(d, data, len(data))
    store.put_public("static/css/app.1a2b3c4d.css", data, len(data),
                     content_type="text/css; charset=utf-8", digest=d)
    raw = s3_admin.get_object(Bucket=s3_bucket, Key="site/static/css/app.1a2b3c4d.css")
    assert raw["Body"].read() == data
    assert raw["ContentType"] == "text/css; charset=utf-8"
    assert raw["CacheControl"] == IMMUTABLE
    assert "ContentEncoding" not in raw
    info = store.head_public("static/css/app.1a2b3c4d.css")
    assert (info.size, info.digest, info.cache_control) == (len(data), d, IMMUTABLE)
    assert store.head_public("static/css/app.00000000.css") is None
    store.write_manifest(b"{}", None)
    assert list(store.list_public()) == ["static/css/app.1a2b3c4d.css"]
    assert store.delete_public(["static/css/app.1a2b3c4d.css", "static/gone.css"]) == 1
    assert list(store.list_public()) == []
    assert store.has_object(d)  # the object itself is another key


@pytest.mark.parametrize("key", ["/static/a.css", "static//a.css", "static/../a.css",
                                 "objects/ab/cd", "manifest.json", ""])
def test_a_cdn_key_that_is_not_a_url_path_or_is_the_stores_own_is_refused(s3_bucket, key):
    store = make_store(f"s3://{s3_bucket}/site")
    with pytest.raises(ValueError, match="not a CDN-origin key"):
        store.put_public(key, b"x", 1, content_type="text/plain", digest=digest(b"x"))


def test_a_cdn_key_with_bytes_not_the_digests_is_never_written(s3_bucket):
    store = make_store(f"s3://{s3_bucket}/site")
    with pytest.raises(ValueError, match="SHA-256"):
        store.put_public("static/a.1.css", b"other", 5, content_type="text/css",
                         digest=digest(b"right"))
    assert store.head_public("static/a.1.css") is None


def test_a_large_stream_is_sent_in_parts_never_whole_in_memory(s3_bucket):
    from bustware.s3store import PART_SIZE

    size = 5 * PART_SIZE + 123
    block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB of incompressible bytes

    class Stream(io.RawIOBase):
        """Bytes made as they are read, so the test holds none of them."""

        def __init__(self) -> None:
            self.pos = 0

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            n = min(len(b), size - self.pos, len(block))
            b[:n] = block[:n]
            self.pos += n
            return n

    sha = hashlib.sha256()
    left = size
    while left:
        n = min(left, len(block))
        sha.update(block[:n])
        left -= n
    d = sha.hexdigest()
    store = make_store(f"s3://{s3_bucket}/big")
    store.has_object(d)  # the client and its connections, before measuring
    tracemalloc.start()
    try:
        assert store.put_object(d, Stream(), size) is True
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * PART_SIZE, f"{peak} bytes at once for a {size}-byte stream"
    with store.open_object(d) as f:
        got = hashlib.sha256()
        while chunk := f.read(1 << 20):
            got.update(chunk)
    assert got.hexdigest() == d


def test_an_object_whose_bytes_are_not_its_digests_fails_the_read(s3_bucket, s3_admin):
    store = make_store(f"s3://{s3_bucket}/site")
    d = digest(b"the right bytes")
    s3_admin.put_object(Bucket=s3_bucket, Key=f"site/objects/{d[:2]}/{d}", Body=b"tampered")
    with pytest.raises(StoreError, match="build again"):
        store.get_object(d)


def test_an_unchanged_manifest_is_not_sent_again(s3_bucket):
    store = make_store(f"s3://{s3_bucket}/site")
    tag = store.write_manifest(b'{"v": 1}', None)
    assert store.read_manifest_if_changed(tag) is None
    tag2 = store.write_manifest(b'{"v": 2}', tag)
    changed = store.read_manifest_if_changed(tag)
    assert (changed.data, changed.tag) == (b'{"v": 2}', tag2)


# -- faults --------------------------------------------------------------------


def test_no_such_bucket_names_it_and_says_how_to_create_it(s3_bucket):
    store = make_store("s3://no-such-bucket-here/site")
    for call in (store.read_manifest, lambda: store.put_object(digest(b"x"), b"x", 1),
                 lambda: list(store.list_objects())):
        with pytest.raises(StoreError) as err:
            call()
        assert not isinstance(err.value, StoreUnavailable)
        assert "'no-such-bucket-here' does not exist" in str(err.value)
        assert "aws s3 mb s3://no-such-bucket-here" in str(err.value)


def test_a_stopped_store_is_unavailable_within_the_timeout(monkeypatch):
    from conftest import free_port

    use_env(monkeypatch, aws_env(f"http://127.0.0.1:{free_port()}"))
    store = make_store("s3://some-bucket/site")
    started = time.monotonic()
    for call in (store.read_manifest, lambda: store.has_object(digest(b"x")),
                 lambda: store.write_manifest(b"{}", None)):
        with pytest.raises(StoreUnavailable, match="did not answer"):
            call()
    assert time.monotonic() - started < 15


def test_a_hanging_store_is_unavailable_within_a_bounded_time(monkeypatch):
    with silent_server() as silent:
        use_env(monkeypatch, aws_env(f"http://127.0.0.1:{silent.port}"))
        store = make_store("s3://some-bucket/site")  # the default timeouts
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="did not answer"):
            store.read_manifest()
        took = time.monotonic() - started
        # 2 attempts of a 3 s read timeout, a back-off under a second, and
        # making the client (generous: the machine may be busy).
        assert 6 <= took < 12, took
        assert silent.accepted == 2
        quick = make_store("s3://some-bucket/site", read_timeout=0.3, max_attempts=1)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            quick.has_object(digest(b"x"))
        assert time.monotonic() - started < 3
        assert silent.accepted == 3


def test_access_denied_names_the_bucket_and_the_credentials(tmp_path, monkeypatch):
    # moto enforces IAM after this many requests: the bucket, the user and
    # its key are made before, and the user has no policy.
    with moto_server(tmp_path / "moto.log", env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"}) as url:
        admin = admin_client(url)
        bucket = new_bucket(admin)
        import boto3

        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        iam.create_user(UserName="replica")
        key = iam.create_access_key(UserName="replica")["AccessKey"]
        use_env(monkeypatch, aws_env(url, key["AccessKeyId"], key["SecretAccessKey"]))
        store = make_store(f"s3://{bucket}/site")
        for call in (store.read_manifest, lambda: store.has_object(digest(b"x")),
                     lambda: store.write_manifest(b"{}", None)):
            with pytest.raises(StoreError) as err:
                call()
            message = str(err.value)
            assert not isinstance(err.value, (StoreUnavailable, ManifestConflict, NoSuchObject))
            assert f"s3://{bucket}/site" in message and "access denied" in message
            assert key["AccessKeyId"][:4] in message and "(from env)" in message
            assert "AWS_PROFILE" in message and "AWS_ACCESS_KEY_ID" in message


def test_no_credentials_says_where_to_put_them(s3_endpoint, monkeypatch):
    use_env(monkeypatch, aws_env(s3_endpoint))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StoreError, match="no AWS credentials found: set AWS_PROFILE"):
        make_store("s3://my-bucket/site").read_manifest()


def test_a_profile_that_does_not_exist_is_named(s3_endpoint, monkeypatch):
    use_env(monkeypatch, aws_env(s3_endpoint))
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(StoreError, match="AWS_PROFILE='no-such-profile' names no profile"):
        make_store("s3://my-bucket/site").read_manifest()


def test_bad_timeouts_are_refused():
    with pytest.raises(ValueError, match="connect_timeout=0"):
        make_store("s3://my-bucket/x", connect_timeout=0)
    with pytest.raises(ValueError, match="max_attempts=0"):
        make_store("s3://my-bucket/x", max_attempts=0)
