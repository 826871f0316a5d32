"""The file operations publishing needs, on local disks, HDFS and object stores.

Local paths use the OS directly. Other schemes (hdfs://, s3a://, gs://, abfs://, ...) go through
Hadoop's FileSystem API in the driver JVM, so they use exactly the job's Hadoop configuration
(credentials, endpoints). Publishing never renames directories; what it needs from a store is:

- ``write_bytes``: replace one small object so that readers see the old content or the new,
  never a part. Local disks: write a temporary file, fsync, ``os.replace``. Schemes with an
  atomic rename (HDFS, viewfs, ABFS, file via Hadoop, and any scheme not listed below):
  temporary file, then ``FileContext.rename(OVERWRITE)``. Object stores whose objects appear
  whole when the upload completes (s3a/s3/s3n, gs, oss, cos/cosn, obs): one PUT.
- ``create_exclusive``: create-if-absent. Atomic on local disks (hard link of a complete
  temporary file) and HDFS (``create(overwrite=false)``); on object stores it is atomic only
  where the store's conditional writes are enabled, so ``atomic_create`` is False there and the
  lease confirms by reading back (see publish.py and docs/cluster.md).

Failures are raised as :class:`StorageError` saying what failed on which path and why (permission
denied, bucket missing, network), never as something else.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from item2vec.errors import Item2VecError

# Objects become visible only when their upload completes: a single write replaces atomically.
PUT_SCHEMES = frozenset({"s3", "s3a", "s3n", "gs", "oss", "cos", "cosn", "obs"})

_DENIED = ("AccessControlException", "AccessDeniedException", "PermissionDenied",
           "Permission denied", "403 Forbidden", "Forbidden")
_MISSING = ("FileNotFoundException", "UnknownStoreException", "NoSuchBucket",
            "ParentNotDirectoryException", "bucket does not exist", "does not exist")


class StorageError(Item2VecError):
    """A storage operation failed (permission denied, bucket missing, network, ...): exit 1.

    ``kind`` is "denied", "missing" or "io", so callers can tell a bad path (the user's to fix)
    from a failing store.
    """

    exit_code = 1

    def __init__(self, message: str, *, kind: str = "io") -> None:
        super().__init__(message)
        self.kind = kind


def is_local(path: str) -> bool:
    return urlparse(str(path)).scheme in ("", "file")


def local_path(path: str) -> str:
    return urlparse(path).path if str(path).startswith("file:") else str(path)


def _local_temp(path: str, data: bytes) -> str:
    """``data`` written and synced to a fresh temporary file beside ``path`` (its directory made
    if missing): what an atomic replace or link then publishes whole."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def host_name() -> str:
    return socket.gethostname()


def describe_error(exc: BaseException) -> tuple[str, str]:
    """(kind, one-line cause) of an OS or Java (py4j) exception."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        parts = []
        cause = java
        while cause is not None and len(parts) < 4:
            name = str(cause.getClass().getName()).rsplit(".", 1)[-1]
            parts.append(f"{name}: {_first_line(cause.getMessage())}")
            cause = cause.getCause()
        text = "; caused by ".join(parts)
    else:
        text = f"{type(exc).__name__}: {_first_line(str(exc))}"
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) in (errno.EROFS,
                                                                          errno.EACCES):
        return "denied", text
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return "missing", text
    if any(s in text for s in _DENIED):
        return "denied", text
    if java is not None and any(s in text for s in _MISSING):
        return "missing", text
    return "io", text


def _first_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0] if lines else ""


class Storage:
    """Operations on paths under one root; paths are strings joined with '/'.

    ``Storage(None, local_root)`` works without Spark. ``hadoop=True`` sends even a local root
    through Hadoop's FileSystem (tests use it to exercise the code path object stores take).
    """

    def __init__(self, spark: Any, root: str, *, hadoop: bool = False) -> None:
        root = str(root)
        self.local = is_local(root) and not hadoop
        self.scheme = urlparse(root).scheme or "file"
        if self.local:
            self.root = str(Path(local_path(root)).resolve())
        else:
            if spark is None:
                raise ValueError(f"a SparkSession is needed for storage on {root}")
            if is_local(root):  # hadoop=True on a local path
                root = f"file:{Path(local_path(root)).resolve()}"
            self.root = root.rstrip("/")
            jvm = spark.sparkContext._jvm
            self._jvm = jvm
            self._gateway = spark.sparkContext._gateway
            self._conf = spark.sparkContext._jsc.hadoopConfiguration()
            with self._guard("open file system for", self.root):
                self._fs = jvm.org.apache.hadoop.fs.Path(self.root).getFileSystem(self._conf)
        self.put_replaces = not self.local and self.scheme in PUT_SCHEMES
        self.atomic_create = self.local or self.scheme not in PUT_SCHEMES

    # -- paths -----------------------------------------------------------------------------
    def join(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def relative(self, path: str) -> str:
        return path[len(self.root) + 1:] if path.startswith(self.root + "/") else path

    def uri(self, path: str) -> str:
        """What Spark should be given for ``path``. Not ``Path.as_uri()``: it percent-encodes
        '=', and Hadoop would then write to a directory literally named ``dt%3D...``."""
        return f"file://{path}" if self.local else path

    def _p(self, path: str) -> Any:  # a py4j org.apache.hadoop.fs.Path
        return self._jvm.org.apache.hadoop.fs.Path(path)

    @contextlib.contextmanager
    def _guard(self, what: str, path: str) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except Exception as exc:  # OSError or py4j's Py4JJavaError
            kind, cause = describe_error(exc)
            raise StorageError(f"cannot {what} {path}: {cause}", kind=kind) from exc

    # -- queries ---------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        if self.local:
            return os.path.lexists(path)
        with self._guard("check", path):
            return bool(self._fs.exists(self._p(path)))

    def is_dir(self, path: str) -> bool:
        if self.local:
            return os.path.isdir(path)
        with self._guard("check", path):
            try:
                return bool(self._fs.getFileStatus(self._p(path)).isDirectory())
            except Exception as exc:
                if describe_error(exc)[0] == "missing":
                    return False
                raise

    def listdir(self, path: str) -> list[str]:
        """Names of the entries directly under ``path`` (empty when it is not a directory)."""
        if self.local:
            with self._guard("list", path):
                try:
                    return sorted(os.listdir(path))
                except (FileNotFoundError, NotADirectoryError):
                    return []
        with self._guard("list", path):
            try:
                return sorted(str(s.getPath().getName())
                              for s in self._fs.listStatus(self._p(path)))
            except Exception as exc:
                if describe_error(exc)[0] == "missing":
                    return []
                raise

    def list_files(self, path: str) -> list[str]:
        """Every file below ``path``, as paths relative to it ('a/b.parquet'), sorted."""
        if self.local:
            out = []
            with self._guard("list", path):
                for dirpath, _, names in os.walk(path):
                    rel = os.path.relpath(dirpath, path)
                    out += [n if rel == "." else f"{rel}/{n}".replace(os.sep, "/")
                            for n in names]
            return sorted(out)
        with self._guard("list", path):
            base = self._fs.makeQualified(self._p(path)).toString().rstrip("/")
            try:
                it = self._fs.listFiles(self._p(path), True)
            except Exception as exc:
                if describe_error(exc)[0] == "missing":
                    return []
                raise
            out = []
            while it.hasNext():
                full = str(it.next().getPath().toString())
                out.append(full[len(base) + 1:] if full.startswith(base + "/") else full)
            return sorted(out)

    def read_bytes(self, path: str) -> bytes | None:
        """The whole content of ``path``, or None when it does not exist."""
        if self.local:
            with self._guard("read", path):
                try:
                    return Path(path).read_bytes()
                except FileNotFoundError:
                    return None
        with self._guard("read", path):
            try:
                stream = self._fs.open(self._p(path))
            except Exception as exc:
                if describe_error(exc)[0] == "missing":
                    return None
                raise
            try:
                return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
            finally:
                stream.close()

    def read_text(self, path: str) -> str | None:
        data = self.read_bytes(path)
        return None if data is None else data.decode("utf-8")

    # -- changes ---------------------------------------------------------------------------
    def mkdirs(self, path: str) -> None:
        with self._guard("create directory", path):
            if self.local:
                os.makedirs(path, exist_ok=True)
            else:
                self._fs.mkdirs(self._p(path))

    def delete(self, path: str) -> None:
        """Remove a file or a whole directory; nothing to do when it does not exist."""
        with self._guard("delete", path):
            if self.local:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                elif os.path.lexists(path):
                    os.remove(path)
            else:
                self._fs.delete(self._p(path), True)

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to a ``dst`` that must not exist yet (only used to tidy up outputs of
        older versions: publishing never renames)."""
        with self._guard(f"rename {src} to", dst):
            if self.local:
                os.rename(src, dst)
            elif not self._fs.rename(self._p(src), self._p(dst)):
                raise OSError(f"rename {src} -> {dst} returned false")

    def write_bytes(self, path: str, data: bytes) -> None:
        """Replace ``path`` atomically: readers see the old content or the new, never a part
        (see the module docstring for how each scheme does it). Parent directories are made."""
        if self.local:
            with self._guard("write", path):
                tmp = _local_temp(path, data)
                try:
                    os.replace(tmp, path)
                finally:
                    if os.path.lexists(tmp):
                        os.remove(tmp)
            return
        with self._guard("write", path):
            if self.put_replaces:
                self._put(path, data, overwrite=True)
                return
            tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
            self._put(tmp, data, overwrite=True)
            try:
                self._replace(tmp, path)
            except Exception:
                self._fs.delete(self._p(tmp), False)
                raise

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8"))

    def create_exclusive(self, path: str, data: bytes | str) -> bool:
        """Create ``path`` holding ``data`` only if it does not exist; False when it exists.

        Atomic where ``atomic_create`` is True. Elsewhere two callers may both get True, so
        callers read the file back after a pause to find out who won.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        if self.local:
            with self._guard("create", path):
                tmp = _local_temp(path, data)
                try:
                    try:  # a hard link publishes the complete file or fails if path exists
                        os.link(tmp, path)
                    except FileExistsError:
                        return False
                    except OSError as exc:  # file systems without hard links
                        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                            raise
                        return self._create_excl_open(path, data)
                    return True
                finally:
                    os.remove(tmp)
        with self._guard("create", path):
            try:
                self._put(path, data, overwrite=False)
            except Exception as exc:
                if "AlreadyExists" in describe_error(exc)[1] or \
                        "already exists" in describe_error(exc)[1]:
                    return False
                raise
            return True

    @staticmethod
    def _create_excl_open(path: str, data: bytes) -> bool:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True

    def _put(self, path: str, data: bytes, *, overwrite: bool) -> None:
        out = self._fs.create(self._p(path), overwrite)
        try:
            out.write(bytearray(data))
        finally:
            out.close()

    def _replace(self, src: str, dst: str) -> None:
        """Atomic rename over an existing file (FileContext; FileSystem.rename refuses)."""
        rename = self._jvm.org.apache.hadoop.fs.Options.Rename
        options = self._gateway.new_array(rename, 1)  # a Java varargs parameter
        options[0] = rename.OVERWRITE
        ctx = self._jvm.org.apache.hadoop.fs.FileContext.getFileContext(self._fs.getUri(),
                                                                         self._conf)
        ctx.rename(self._p(src), self._p(dst), options)

    # -- pyarrow access --------------------------------------------------------------------
    def arrow_filesystem(self) -> pafs.FileSystem:
        """A pyarrow filesystem for paths of this store (``join`` results), e.g. for the report:
        the local one for local roots, else one that goes through the same Hadoop FileSystem
        (and so the same credentials and endpoints) as the job."""
        if self.local:
            return pafs.LocalFileSystem()
        return pafs.PyFileSystem(_HadoopHandler(self))


class _HadoopHandler(pafs.FileSystemHandler):
    """pyarrow's view of a Hadoop FileSystem through py4j: enough for datasets and reports."""

    def __init__(self, store: Storage) -> None:
        self.store = store

    def get_type_name(self) -> str:
        return f"hadoop-{self.store.scheme}"

    def normalize_path(self, path: str) -> str:
        return path

    def equals(self, other: Any) -> bool:
        return isinstance(other, _HadoopHandler) and other.store is self.store

    def _info(self, status: Any, path: str | None = None) -> pafs.FileInfo:
        kind = pafs.FileType.Directory if status.isDirectory() else pafs.FileType.File
        name = path if path is not None else str(status.getPath().toString())
        return pafs.FileInfo(name, kind, size=None if status.isDirectory() else status.getLen(),
                             mtime_ns=int(status.getModificationTime()) * 1_000_000)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        out = []
        for path in paths:
            with self.store._guard("check", path):
                try:
                    out.append(self._info(self.store._fs.getFileStatus(self.store._p(path)),
                                          path))
                except Exception as exc:
                    if describe_error(exc)[0] != "missing":
                        raise
                    out.append(pafs.FileInfo(path, pafs.FileType.NotFound))
        return out

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        base = selector.base_dir.rstrip("/")
        if not self.store.is_dir(base):
            if selector.allow_not_found:
                return []
            raise FileNotFoundError(base)
        out, todo = [], [base]
        while todo:
            current = todo.pop()
            with self.store._guard("list", current):
                statuses = list(self.store._fs.listStatus(self.store._p(current)))
            for status in statuses:
                info = self._info(status, f"{current}/{status.getPath().getName()}")
                out.append(info)
                if selector.recursive and info.type == pafs.FileType.Directory:
                    todo.append(info.path)
        return out

    def create_dir(self, path: str, recursive: bool) -> None:
        self.store.mkdirs(path)

    def delete_dir(self, path: str) -> None:
        self.store.delete(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        for name in self.store.listdir(path):
            self.store.delete(f"{path.rstrip('/')}/{name}")

    def delete_root_dir_contents(self) -> None:
        raise NotImplementedError("refusing to empty the root of a store")

    def delete_file(self, path: str) -> None:
        self.store.delete(path)

    def move(self, src: str, dest: str) -> None:
        self.store.rename(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        data = self.store.read_bytes(src)
        if data is None:
            raise FileNotFoundError(src)
        self.store.write_bytes(dest, data)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.open_input_file(path)

    def open_input_file(self, path: str) -> pa.NativeFile:
        with self.store._guard("open", path):
            fs, p = self.store._fs, self.store._p(path)
            size = int(fs.getFileStatus(p).getLen())
            stream = fs.open(p)
        return pa.PythonFile(_JvmInput(self.store, stream, size), mode="r")

    def open_output_stream(self, path: str, metadata: Any = None) -> pa.NativeFile:
        return pa.PythonFile(_Upload(self.store, path), mode="w")

    def open_append_stream(self, path: str, metadata: Any = None) -> pa.NativeFile:
        raise NotImplementedError("append is not supported")


class _JvmInput(io.RawIOBase):
    """A seekable Python file over a Hadoop FSDataInputStream (py4j moves bytes per read)."""

    def __init__(self, store: Storage, stream: Any, size: int) -> None:
        self._store, self._stream, self._size, self._pos = store, stream, size, 0
        self._utils = store._jvm.org.apache.commons.io.IOUtils

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def size(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        n = self._size - self._pos if n is None or n < 0 else min(n, self._size - self._pos)
        if n <= 0:
            return b""
        self._stream.seek(self._pos)
        data = bytes(self._utils.toByteArray(self._stream, n))
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


class _Upload(io.BytesIO):
    """Collects what pyarrow writes and stores it as one object on close."""

    def __init__(self, store: Storage, path: str) -> None:
        super().__init__()
        self._store, self._path = store, path

    def close(self) -> None:
        if not self.closed:
            self._store.write_bytes(self._path, self.getvalue())
        super().close()
