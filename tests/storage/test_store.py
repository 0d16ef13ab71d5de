"""Every storage behaviour, on a local folder and on S3 against a live localbucket server."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from coinlens.config import load_settings
from coinlens.storage import KeyNotFound, LocalStore, ObjectStore, S3Store, StoreError, open_store
from helpers import free_port


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        opened = open_store((tmp_path / "store").as_uri())
        assert isinstance(opened, LocalStore)
    else:
        server = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("bucket")
        settings = load_settings(tmp_path, **server.env_settings())
        opened = open_store(f"s3://{bucket}/some/prefix", settings)
        assert isinstance(opened, S3Store)
    opened.ensure_ready()
    return opened


def test_put_get_exists_delete(store: ObjectStore) -> None:
    assert not store.exists("models/1/checkpoint.pt")
    store.put("models/1/checkpoint.pt", b"weights v1")
    assert store.exists("models/1/checkpoint.pt")
    assert store.get("models/1/checkpoint.pt") == b"weights v1"
    store.put("models/1/checkpoint.pt", b"weights v2")  # named keys may be replaced
    assert store.get("models/1/checkpoint.pt") == b"weights v2"
    store.delete("models/1/checkpoint.pt")
    assert not store.exists("models/1/checkpoint.pt")
    store.delete("models/1/checkpoint.pt")  # deleting twice is fine


def test_missing_key_raises_key_not_found(store: ObjectStore) -> None:
    with pytest.raises(KeyNotFound, match="nothing/here"):
        store.get("nothing/here")


def test_content_addressed_put_stores_once(store: ObjectStore) -> None:
    data = b"the same photo"
    digest = hashlib.sha256(data).hexdigest()
    first = store.put_content("images", data, ".jpg")
    second = store.put_content("images", data, ".jpg")
    assert first == second == f"images/{digest[:2]}/{digest}.jpg"
    assert list(store.list("images/")) == [first]
    assert store.get(first) == data


def test_list_by_prefix_in_order(store: ObjectStore) -> None:
    for key in ["b/2", "a/1", "a/3", "c"]:
        store.put(key, key.encode())
    assert list(store.list("a/")) == ["a/1", "a/3"]
    assert list(store.list()) == ["a/1", "a/3", "b/2", "c"]


def test_s3_list_paginates_past_one_page(s3_server, bucket, tmp_path: Path) -> None:
    store = open_store(f"s3://{bucket}", load_settings(tmp_path, **s3_server.env_settings()))
    store.ensure_ready()
    keys = [f"many/{index:04d}" for index in range(1005)]  # S3 pages hold at most 1000 keys
    for key in keys:
        store.put(key, b"x")
    assert list(store.list("many/")) == keys


@pytest.mark.parametrize("key", ["../escape", "/absolute", "a/../../b", "a//b", "", "sp ace"])
def test_unsafe_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(StoreError, match="invalid store key"):
        store.put(key, b"x")


def test_local_writes_are_atomic_and_leave_no_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.put("a/b", b"1" * 100_000)
    store.put("a/b", b"2" * 10)
    assert store.get("a/b") == b"2" * 10
    assert [p.name for p in (tmp_path / "store" / "a").iterdir()] == ["b"]


def test_local_write_failure_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "blocker").write_bytes(b"a file where a folder should be")
    store = LocalStore(tmp_path / "store")
    with pytest.raises(StoreError, match="blocker/x"):
        store.put("blocker/x", b"data")


def test_open_store_by_url(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path.as_uri()), LocalStore)
    assert isinstance(open_store("s3://bucket/prefix"), S3Store)
    with pytest.raises(StoreError, match="not supported"):
        open_store("ftp://host/path")
    with pytest.raises(StoreError, match="names no bucket"):
        open_store("s3:///prefix")


def test_s3_store_creates_its_bucket_and_keeps_to_its_prefix(s3_server, bucket, tmp_path) -> None:
    settings = load_settings(tmp_path, **s3_server.env_settings())
    store = open_store(f"s3://{bucket}/museum/coins", settings)
    store.ensure_ready()
    store.put("images/x", b"data")
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["museum/coins/images/x"]
    assert list(store.list()) == ["images/x"]


def test_s3_unreachable_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, s3_endpoint_url=f"http://127.0.0.1:{free_port()}")
    store = open_store("s3://nowhere/prefix", settings)
    with pytest.raises(StoreError, match="cannot write 'k' in s3://nowhere/prefix"):
        store.put("k", b"x")


def test_a_local_store_never_loads_boto3(tmp_path: Path) -> None:
    """boto3 costs every command 0.2 s to import: only an S3 store pays it. A fresh process runs
    init, ingest and status on a local home, as a laptop user would, and then looks."""
    photo = Path(__file__).parents[2] / "examples/euro-coins/references/1c/train_13_9.jpg"
    home = tmp_path / "home"
    commands = [
        ["init", "--home", str(home)],
        ["ingest", str(photo.parent), "--home", str(home)],
        ["status", "--home", str(home)],
    ]
    code = (
        "import sys; from coinlens.cli.app import main\n"
        f"for argv in {commands!r}:\n"
        "    sys.argv = ['coinlens', *argv]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, (argv, exc.code)\n"
        "print('boto3' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
