"""item2vec.storage: the same operations through the OS and through Hadoop's FileSystem.

``hadoop-fs`` sends a local directory through Hadoop's FileSystem in the driver JVM, which is the
code path hdfs://, s3a:// and gs:// outputs take.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from item2vec.storage import Storage, StorageError


@pytest.fixture(params=["os", "hadoop-fs"])
def store(request, tmp_path) -> Storage:
    if request.param == "os":
        return Storage(None, str(tmp_path / "root"))
    spark = request.getfixturevalue("spark")
    return Storage(spark, str(tmp_path / "root"), hadoop=True)


def test_write_read_and_replace(store):
    path = store.join("a", "b", "LATEST")
    assert store.read_bytes(path) is None and store.read_text(path) is None
    store.write_bytes(path, b"dt=2026-01-10/run=r1\n")  # parents are created
    assert store.read_text(path) == "dt=2026-01-10/run=r1\n"
    store.write_text(path, "dt=2026-01-11/run=r2\n")  # replaces
    assert store.read_bytes(path) == b"dt=2026-01-11/run=r2\n"
    assert store.listdir(store.join("a", "b")) == ["LATEST"]  # no temporary left behind
    big = bytes(range(256)) * 4000
    store.write_bytes(store.join("big.bin"), big)
    assert store.read_bytes(store.join("big.bin")) == big


def test_create_exclusive(store):
    path = store.join("_LOCK")
    assert store.create_exclusive(path, '{"run_id": "a"}')
    assert not store.create_exclusive(path, '{"run_id": "b"}')
    assert store.read_text(path) == '{"run_id": "a"}'
    assert store.atomic_create  # local disks and HDFS-like file systems


def test_listing_and_delete(store):
    for rel in ("dt=1/run=a/x/part-0.parquet", "dt=1/run=a/_SUCCESS", "dt=1/CURRENT", "top"):
        store.write_bytes(store.join(*rel.split("/")), b"1")
    assert store.listdir(store.root) == ["dt=1", "top"]
    assert store.listdir(store.join("dt=1")) == ["CURRENT", "run=a"]
    assert store.listdir(store.join("missing")) == []
    assert store.list_files(store.join("dt=1")) == ["CURRENT", "run=a/_SUCCESS",
                                                    "run=a/x/part-0.parquet"]
    assert store.list_files(store.join("missing")) == []
    assert store.is_dir(store.join("dt=1")) and not store.is_dir(store.join("top"))
    assert not store.is_dir(store.join("missing"))
    assert store.exists(store.join("top")) and not store.exists(store.join("missing"))
    store.delete(store.join("dt=1"))
    store.delete(store.join("missing"))  # nothing to do
    assert store.listdir(store.root) == ["top"]


def test_arrow_filesystem_reads_and_writes_datasets(store):
    """What the report and the history use: Parquet through pyarrow on the store's paths."""
    fs = store.arrow_filesystem()
    table = pa.table({"item_id": ["a", "b", "c"], "item_index": pa.array([0, 1, 2], pa.int32())})
    directory = store.join("run", "item_vectors")
    fs.create_dir(directory, recursive=True)
    pq.write_table(table.slice(0, 2), f"{directory}/part-0.parquet", filesystem=fs)
    pq.write_table(table.slice(2), f"{directory}/part-1.parquet", filesystem=fs)
    store.write_bytes(f"{directory}/_SUCCESS", b"")
    got = ds.dataset(directory, filesystem=fs, format="parquet").to_table(
        filter=ds.field("item_index") >= 1)
    assert got.sort_by("item_index").to_pylist() == table.slice(1).to_pylist()
    info = fs.get_file_info([f"{directory}/part-1.parquet", store.join("nope")])
    assert [i.type for i in info] == [pafs.FileType.File, pafs.FileType.NotFound]
    with fs.open_input_file(f"{directory}/part-0.parquet") as fh:
        assert fh.read(4) == b"PAR1" and fh.size() > 8


def test_errors_say_what_failed_where(tmp_path):
    (tmp_path / "file").write_text("x")
    store = Storage(None, str(tmp_path / "file" / "out"))
    with pytest.raises(StorageError) as err:
        store.write_bytes(store.join("LATEST"), b"x")
    assert str(err.value).startswith(f"cannot write {tmp_path}/file/out/LATEST: "
                                     "NotADirectoryError: [Errno 20] Not a directory")
    assert err.value.kind == "missing" and err.value.exit_code == 1
    with pytest.raises(StorageError, match=r"^cannot create .*/_LOCK: NotADirectoryError"):
        store.create_exclusive(store.join("_LOCK"), "{}")  # an error, not "already exists"


def test_hadoop_errors_surface_as_themselves(spark, tmp_path):
    with pytest.raises(StorageError) as err:
        Storage(spark, "nosuchfs://bucket/out")
    assert str(err.value).startswith(
        "cannot open file system for nosuchfs://bucket/out: UnsupportedFileSystemException: "
        'No FileSystem for scheme "nosuchfs"')
    (tmp_path / "file").write_text("x")
    store = Storage(spark, str(tmp_path / "file" / "out"), hadoop=True)
    with pytest.raises(StorageError) as err:
        store.create_exclusive(store.join("_LOCK"), "{}")  # an error, not "already exists"
    assert str(err.value) == (f"cannot create file:{tmp_path}/file/out/_LOCK: "
                              "ParentNotDirectoryException: Parent path is not a directory: "
                              f"file:{tmp_path}/file")
    assert err.value.kind == "missing"
