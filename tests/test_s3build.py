"""``bustware build/verify/prune --store s3://BUCKET/PREFIX`` against a real S3
server (moto's, over HTTP), each build run as CI runs it: from a fresh
directory, with no local manifest and no local objects."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import make_tree
from s3server import aws_env

from bustware import manifest as mf
from bustware.cli import main
from bustware.s3store import S3Store

IMMUTABLE = "public, max-age=31536000, immutable"
REPO = Path(__file__).resolve().parent.parent

V1 = {"css/app.css": "body { background: url(../img/logo.png) }\n" + "a{}\n" * 400,
      "img/logo.png": b"\x89PNG" + bytes(range(256)) * 8,
      "app.js": "console.log('v1');\n" * 100}
V2 = {**V1, "app.js": "console.log('v2');\n" * 100}


def checkout(tmp: Path, name: str, files: dict) -> Path:
    """A fresh CI runner's checkout: ``name/static``."""
    return make_tree(tmp / name / "static", files).parent


def build(where: Path, url: str, *extra: str) -> int:
    cwd = os.getcwd()
    os.chdir(where)
    try:
        return main(["build", "static", "--store", url, "--out",
                     "static/.bustware/manifest.json", "--keep", "2", "--compress", "gzip",
                     *extra])
    finally:
        os.chdir(cwd)


def keys(admin, bucket: str, prefix: str = "") -> dict[str, int]:
    out = {}
    for page in admin.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            out[item["Key"]] = item["Size"]
    return out


def bucket_manifest(admin, bucket: str) -> tuple[bytes, str]:
    got = admin.get_object(Bucket=bucket, Key="site/manifest.json")
    return got["Body"].read(), got["ETag"]


def test_a_build_from_a_fresh_directory_fills_the_bucket_and_the_image(
        s3_bucket, s3_admin, tmp_path, capsys):
    url = f"s3://{s3_bucket}/site"
    ci = checkout(tmp_path, "ci1", V1)
    assert build(ci, url) == 0
    out = capsys.readouterr().out
    assert f"{url}: " in out and "objects uploaded" in out and "CDN-origin keys written" in out

    data, _etag = bucket_manifest(s3_admin, s3_bucket)
    local = ci / "static" / ".bustware" / "manifest.json"
    assert local.read_bytes() == data  # the image carries the bucket's manifest
    manifest = mf.parse(data, "bucket")
    listing = keys(s3_admin, s3_bucket)
    used = mf.referenced_objects(manifest)
    # Every file's served bytes, the identity bytes of those served as they
    # are, and the compressed variants: all by digest, in the bucket and
    # beside the local manifest.
    for path, rec in manifest["files"].items():
        assert rec["digest"] in used, path
    assert any("variants" in r for r in manifest["files"].values())
    for digest in used:
        body = s3_admin.get_object(Bucket=s3_bucket,
                                   Key=f"site/objects/{digest[:2]}/{digest}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest
        assert (local.parent / "objects" / digest[:2] / digest).read_bytes() == body

    # The CDN-origin keys: the served bytes (the stylesheet rewritten), the
    # Content-Type served, immutable, never compressed.
    css = manifest["files"]["css/app.css"]
    png = manifest["files"]["img/logo.png"]
    css_key = f"site/static/css/app.{css['version']}.css"
    got = s3_admin.get_object(Bucket=s3_bucket, Key=css_key)
    body = got["Body"].read()
    assert f"/static/img/logo.{png['version']}.png".encode() in body
    assert hashlib.sha256(body).hexdigest() == css["served"]["object"]
    assert got["ContentType"] == "text/css; charset=utf-8"
    assert got["CacheControl"] == IMMUTABLE
    assert "ContentEncoding" not in got
    got = s3_admin.get_object(Bucket=s3_bucket, Key=f"site/static/img/logo.{png['version']}.png")
    assert got["Body"].read() == V1["img/logo.png"] and got["ContentType"] == "image/png"
    assert sum(k.startswith("site/static/") for k in listing) == len(V1)


def test_an_unchanged_tree_uploads_nothing_and_keeps_the_manifest(
        s3_bucket, s3_admin, tmp_path, capsys):
    url = f"s3://{s3_bucket}/site"
    assert build(checkout(tmp_path, "ci1", V1), url) == 0
    data, etag = bucket_manifest(s3_admin, s3_bucket)
    before = keys(s3_admin, s3_bucket)
    capsys.readouterr()
    time.sleep(0.01)  # another checkout: other file times
    ci2 = checkout(tmp_path, "ci2", V1)
    assert build(ci2, url) == 0
    out = capsys.readouterr().out
    assert "0 objects uploaded" in out and "0 CDN-origin keys written" in out
    assert bucket_manifest(s3_admin, s3_bucket) == (data, etag)
    assert keys(s3_admin, s3_bucket) == before
    # The local manifest says the same, with this checkout's file times.
    local = mf.parse((ci2 / "static/.bustware/manifest.json").read_bytes(), "local")
    remote = mf.parse(data, "bucket")
    assert {p: r["version"] for p, r in local["files"].items()} == \
        {p: r["version"] for p, r in remote["files"].items()}
    assert local["generation"] == remote["generation"] == 1


def test_a_new_release_keeps_the_buckets_generations_and_downloads_none(
        s3_bucket, s3_admin, tmp_path, capsys):
    url = f"s3://{s3_bucket}/site"
    assert build(checkout(tmp_path, "ci1", V1), url) == 0
    ci2 = checkout(tmp_path, "ci2", V2)
    assert build(ci2, url) == 0
    # app.js and its gzip variant: the rest is in the bucket already.
    assert "2 objects uploaded" in capsys.readouterr().out.splitlines()[-1]
    data, _ = bucket_manifest(s3_admin, s3_bucket)
    manifest = mf.parse(data, "bucket")
    assert manifest["generation"] == 2
    old_js = manifest["previous"][0]["files"]["app.js"]
    # The earlier version stays in the bucket, object and CDN key...
    assert f"site/objects/{old_js['digest'][:2]}/{old_js['digest']}" in keys(s3_admin, s3_bucket)
    assert f"site/static/app.{old_js['version']}.js" in keys(s3_admin, s3_bucket)
    # ...and is not in the image: only what this release serves.
    objects = ci2 / "static/.bustware/objects"
    assert not (objects / old_js["digest"][:2] / old_js["digest"]).exists()
    assert (ci2 / "static/.bustware/manifest.json").read_bytes() == data


def test_verify_names_what_the_bucket_lacks(s3_bucket, s3_admin, tmp_path, capsys):
    url = f"s3://{s3_bucket}/site"
    assert build(checkout(tmp_path, "ci1", V1), url) == 0
    assert build(checkout(tmp_path, "ci2", V2), url) == 0
    capsys.readouterr()
    assert main(["verify", "--store", url]) == 0
    assert "holds everything its manifest names" in capsys.readouterr().out
    manifest = mf.parse(bucket_manifest(s3_admin, s3_bucket)[0], "bucket")
    old_js = manifest["previous"][0]["files"]["app.js"]
    png = manifest["files"]["img/logo.png"]
    s3_admin.delete_object(Bucket=s3_bucket,
                           Key=f"site/objects/{old_js['digest'][:2]}/{old_js['digest']}")
    s3_admin.put_object(Bucket=s3_bucket, Key=f"site/static/img/logo.{png['version']}.png",
                        Body=V1["img/logo.png"], ContentType="application/octet-stream",
                        CacheControl=IMMUTABLE, Metadata={"sha256": png["digest"]})
    assert main(["verify", "--store", url]) == 1
    out = capsys.readouterr().out
    assert f"object {old_js['digest']} is missing" in out
    assert f"static/img/logo.{png['version']}.png" in out and "Content-Type" in out
    assert "2 problems" in out

    # --deep reads every object back: a damaged one is named.
    css = manifest["files"]["css/app.css"]["served"]["object"]
    s3_admin.put_object(Bucket=s3_bucket, Key=f"site/objects/{css[:2]}/{css}",
                        Body=b"X" * manifest["files"]["css/app.css"]["served"]["size"])
    assert main(["verify", "--store", url]) == 1
    assert css not in capsys.readouterr().out  # same size: only --deep sees it
    assert main(["verify", "--store", url, "--deep"]) == 1
    assert f"object {css}" in capsys.readouterr().out


def test_prune_drops_only_what_dropped_generations_named(s3_bucket, s3_admin, tmp_path, capsys):
    url = f"s3://{s3_bucket}/site"
    assert build(checkout(tmp_path, "ci1", V1), url) == 0
    assert build(checkout(tmp_path, "ci2", V2), url) == 0
    v3 = {**V2, "app.js": "console.log('v3');\n" * 100}
    assert build(checkout(tmp_path, "ci3", v3), url) == 0
    manifest = mf.parse(bucket_manifest(s3_admin, s3_bucket)[0], "bucket")
    assert [g["generation"] for g in manifest["previous"]] == [2, 1]
    v1_js = manifest["previous"][1]["files"]["app.js"]
    v2_js = manifest["previous"][0]["files"]["app.js"]
    capsys.readouterr()
    assert main(["prune", "--store", url, "--keep", "1"]) == 0
    out = capsys.readouterr().out
    assert "dropped generation 1" in out and f"static/app.{v1_js['version']}.js" in out
    listing = keys(s3_admin, s3_bucket)
    assert f"site/static/app.{v1_js['version']}.js" not in listing
    assert f"site/objects/{v1_js['digest'][:2]}/{v1_js['digest']}" not in listing
    # The kept generation's and the current one's are all there.
    assert f"site/static/app.{v2_js['version']}.js" in listing
    assert f"site/objects/{v2_js['digest'][:2]}/{v2_js['digest']}" in listing
    assert main(["verify", "--store", url]) == 0


@pytest.mark.parametrize("store, says", [
    ("s3://Bad_Bucket/site", "is not a valid bucket name"),
    ("s3:///site", "names no bucket"),
    ("static/.bustware", "is not a store URL: give an S3-compatible bucket as s3://BUCKET"),
])
def test_a_bad_store_is_named_and_nothing_is_written(tmp_path, capsys, store, says):
    ci = checkout(tmp_path, "ci", V1)
    assert build(ci, store) == 2
    err = capsys.readouterr().err
    assert says in err and repr(store) in err
    assert not (ci / "static/.bustware").exists()


def test_a_missing_bucket_is_named(s3_bucket, tmp_path, capsys):
    ci = checkout(tmp_path, "ci", V1)
    assert build(ci, "s3://no-such-bucket-here/site") == 2
    err = capsys.readouterr().err
    assert "'no-such-bucket-here' does not exist" in err and "aws s3 mb" in err
    assert not (ci / "static/.bustware").exists()


def test_a_manifest_of_another_prefix_or_schema_is_refused(s3_bucket, s3_admin, tmp_path,
                                                           capsys):
    url = f"s3://{s3_bucket}/site"
    assert build(checkout(tmp_path, "ci1", V1), url) == 0
    data, _ = bucket_manifest(s3_admin, s3_bucket)
    s3_admin.put_object(Bucket=s3_bucket, Key="copy/manifest.json", Body=data)
    s3_admin.put_object(Bucket=s3_bucket, Key="other/manifest.json",
                        Body=json.dumps({"name": "someone else's"}).encode())
    before = keys(s3_admin, s3_bucket)
    capsys.readouterr()
    for where, says in (("copy", f"was written for the store '{url}'"),
                        ("other", "is not a bustware manifest")):
        ci = checkout(tmp_path, f"ci-{where}", V2)
        assert build(ci, f"s3://{s3_bucket}/{where}") == 2
        err = capsys.readouterr().err
        assert says in err and f"s3://{s3_bucket}/{where}/manifest.json" in err
        assert "aws s3 rm" in err
        assert not (ci / "static/.bustware").exists()
    ci = checkout(tmp_path, "ci-prefix", V2)
    assert build(ci, url, "--prefix", "/assets/") == 2
    err = capsys.readouterr().err
    assert "made with --prefix /static/" in err and "this build gives --prefix /assets/" in err
    assert keys(s3_admin, s3_bucket) == before


def test_a_first_manifest_write_that_loses_the_race_merges(s3_bucket, s3_admin, tmp_path,
                                                           monkeypatch):
    """A real 412: another build writes the manifest between this build's
    read and its write; this one reads again and builds on it."""
    url = f"s3://{s3_bucket}/site"
    assert build(checkout(tmp_path, "ci1", V1), url) == 0
    other = checkout(tmp_path, "ci2", V2)
    original = S3Store.write_manifest
    conflicts = []

    def write_after_the_other(self, payload, expected):
        if not conflicts:
            monkeypatch.setattr(S3Store, "write_manifest", original)
            assert build(other, url) == 0  # generation 2, written first
            monkeypatch.setattr(S3Store, "write_manifest", write_after_the_other)
        try:
            return original(self, payload, expected)
        except Exception as exc:
            conflicts.append(exc)
            raise

    monkeypatch.setattr(S3Store, "write_manifest", write_after_the_other)
    v3 = {**V2, "css/app.css": V1["css/app.css"] + "b{}\n"}
    assert build(checkout(tmp_path, "ci3", v3), url) == 0
    assert [type(c).__name__ for c in conflicts] == ["ManifestConflict"]
    manifest = mf.parse(bucket_manifest(s3_admin, s3_bucket)[0], "bucket")
    assert manifest["generation"] == 3
    assert [g["generation"] for g in manifest["previous"]] == [2, 1]
    monkeypatch.setattr(S3Store, "write_manifest", original)
    assert main(["verify", "--store", url]) == 0


def _cli(tmp: Path, name: str, files: dict, url: str, env: dict, *, hold: Path | None = None
         ) -> subprocess.Popen:
    """``bustware build`` in a process of its own, from a fresh checkout.
    ``hold``: after a few objects are up, touch this file and hang (a build
    to kill mid-upload)."""
    ci = checkout(tmp, name, files)
    code = "import sys; from bustware.cli import main; sys.exit(main(sys.argv[1:]))"
    if hold is not None:
        code = textwrap.dedent(f"""
            import os, threading, time
            from bustware import s3store
            put = s3store.S3Store.put_object
            sent = []
            lock = threading.Lock()
            def slow(self, *a, **kw):
                result = put(self, *a, **kw)
                with lock:
                    sent.append(1)
                    if len(sent) == 3:
                        open({str(hold)!r}, "w").close()
                while len(sent) >= 3:
                    time.sleep(1)
                return result
            s3store.S3Store.put_object = slow
        """) + code
    return subprocess.Popen(
        [sys.executable, "-c", code, "build", "static", "--store", url, "--out",
         "static/.bustware/manifest.json", "--keep", "2", "--compress", "gzip", "--quiet"],
        cwd=ci, env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_build_processes_racing_keep_both_generations(s3_bucket, s3_admin, s3_endpoint,
                                                          tmp_path):
    url = f"s3://{s3_bucket}/site"
    assert build(checkout(tmp_path, "ci0", V1), url) == 0
    env = aws_env(s3_endpoint)
    a = {**V1, "app.js": "console.log('a');\n" * 100}
    b = {**V1, "img/logo.png": b"\x89PNG b" * 300}
    procs = [_cli(tmp_path, "ci-a", a, url, env), _cli(tmp_path, "ci-b", b, url, env)]
    try:
        for p in procs:
            _out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    manifest = mf.parse(bucket_manifest(s3_admin, s3_bucket)[0], "bucket")
    assert manifest["generation"] == 3
    versions = {manifest["files"]["app.js"]["version"]} | {
        g["files"]["app.js"]["version"] for g in manifest["previous"] if "app.js" in g["files"]}
    logo = {manifest["files"]["img/logo.png"]["version"]} | {
        g["files"]["img/logo.png"]["version"] for g in manifest["previous"]
        if "img/logo.png" in g["files"]}
    sha = lambda d: hashlib.sha256(d if isinstance(d, bytes) else d.encode()).hexdigest()[:12]
    # Both builds' files are served (current or kept), none lost.
    assert sha(a["app.js"]) in versions and sha(b["img/logo.png"]) in logo
    assert main(["verify", "--store", url]) == 0


def test_a_build_killed_mid_upload_leaves_the_previous_manifest_whole(
        s3_bucket, s3_admin, s3_endpoint, tmp_path, capsys):
    url = f"s3://{s3_bucket}/site"
    assert build(checkout(tmp_path, "ci0", V1), url) == 0
    before, etag = bucket_manifest(s3_admin, s3_bucket)
    many = {**V2, **{f"img/{i}.png": b"\x89PNG" + os.urandom(2000) for i in range(20)}}
    hold = tmp_path / "held"
    proc = _cli(tmp_path, "ci-killed", many, url, aws_env(s3_endpoint), hold=hold)
    try:
        deadline = time.monotonic() + 60
        while not hold.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the build never uploaded 3 objects"
            time.sleep(0.05)
        # Time for everything the build does without those uploads (a build
        # that wrote its manifest first would have written it by now).
        time.sleep(2)
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    # Some of the new objects are up; the manifest is the one before, and
    # everything it names is there.
    assert bucket_manifest(s3_admin, s3_bucket) == (before, etag)
    capsys.readouterr()
    assert main(["verify", "--store", url]) == 0
    assert not (tmp_path / "ci-killed/static/.bustware/manifest.json").exists()
    # The next build completes the work.
    shutil.rmtree(tmp_path / "ci-killed")
    assert build(checkout(tmp_path, "ci-next", many), url) == 0
    assert "already there" in capsys.readouterr().out
    manifest = mf.parse(bucket_manifest(s3_admin, s3_bucket)[0], "bucket")
    assert manifest["generation"] == 2 and "img/19.png" in manifest["files"]
    assert main(["verify", "--store", url, "--deep"]) == 0


def test_compressed_variants_are_objects_never_cdn_keys(s3_bucket, s3_admin, tmp_path):
    url = f"s3://{s3_bucket}/site"
    assert build(checkout(tmp_path, "ci1", V1), url) == 0
    manifest = mf.parse(bucket_manifest(s3_admin, s3_bucket)[0], "bucket")
    js = manifest["files"]["app.js"]
    gz = js["variants"]["gzip"]["object"]
    body = s3_admin.get_object(Bucket=s3_bucket, Key=f"site/objects/{gz[:2]}/{gz}")["Body"].read()
    assert gzip.decompress(body) == V1["app.js"].encode()
    cdn = s3_admin.get_object(Bucket=s3_bucket, Key=f"site/static/app.{js['version']}.js")
    assert cdn["Body"].read() == V1["app.js"].encode()


def test_access_denied_stops_the_build_before_anything_is_written(tmp_path, monkeypatch,
                                                                  capsys):
    from s3server import admin_client, moto_server, new_bucket, use_env

    # moto enforces IAM after this many requests: the bucket, the user and
    # its key are made before, and the user has no policy.
    with moto_server(tmp_path / "moto.log", env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"}) as url:
        bucket = new_bucket(admin_client(url))
        import boto3

        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        iam.create_user(UserName="ci")
        key = iam.create_access_key(UserName="ci")["AccessKey"]
        use_env(monkeypatch, aws_env(url, key["AccessKeyId"], key["SecretAccessKey"]))
        ci = checkout(tmp_path, "ci", V1)
        assert build(ci, f"s3://{bucket}/site") == 2
        err = capsys.readouterr().err
        assert f"s3://{bucket}/site" in err and "access denied" in err
        assert "s3:PutObject" in err
        assert not (ci / "static/.bustware").exists()


def test_the_query_style_gets_objects_and_says_why_it_has_no_cdn_keys(s3_bucket, s3_admin,
                                                                       tmp_path, capsys):
    url = f"s3://{s3_bucket}/site"
    assert build(checkout(tmp_path, "ci1", V1), url, "--style", "query") == 0
    assert "no CDN-origin keys: the query URL style" in capsys.readouterr().out
    assert not any(k.startswith("site/static/") for k in keys(s3_admin, s3_bucket))
    assert main(["verify", "--store", url]) == 0
