"""The few file operations publishing needs, on local disks and on Hadoop file systems.

Local paths use the OS directly (atomic ``os.replace`` and ``O_EXCL``); other schemes (hdfs://,
s3a://, gs://, ...) go through Hadoop's FileSystem API in the driver JVM. Rename is atomic on
local disks and HDFS; on object stores it is a copy, which the docs point out.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pyspark.sql import SparkSession


def is_local(path: str) -> bool:
    return urlparse(path).scheme in ("", "file")


def local_path(path: str) -> str:
    return urlparse(path).path if path.startswith("file:") else path


class Storage:
    """Directory-level operations under one root. Paths are strings joined with '/'."""

    def __init__(self, spark: SparkSession | None, root: str) -> None:
        self.local = is_local(root)
        self.root = (str(Path(local_path(root)).resolve()) if self.local else root.rstrip("/"))
        self._spark = spark
        if not self.local:
            if spark is None:
                raise ValueError("a SparkSession is needed for non-local storage")
            jvm = spark.sparkContext._jvm
            self._jvm = jvm
            self._conf = spark.sparkContext._jsc.hadoopConfiguration()
            self._fs = jvm.org.apache.hadoop.fs.Path(self.root).getFileSystem(self._conf)

    def join(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def uri(self, path: str) -> str:
        """What Spark should be given for ``path``."""
        return Path(path).as_uri() if self.local else path

    def _p(self, path: str) -> Any:  # a py4j org.apache.hadoop.fs.Path
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path) if self.local else bool(self._fs.exists(self._p(path)))

    def is_dir(self, path: str) -> bool:
        if self.local:
            return os.path.isdir(path)
        return bool(self._fs.exists(self._p(path)) and self._fs.getFileStatus(self._p(path))
                    .isDirectory())

    def mkdirs(self, path: str) -> None:
        if self.local:
            os.makedirs(path, exist_ok=True)
        else:
            self._fs.mkdirs(self._p(path))

    def listdir(self, path: str) -> list[str]:
        if not self.is_dir(path):
            return []
        if self.local:
            return sorted(os.listdir(path))
        return sorted(s.getPath().getName() for s in self._fs.listStatus(self._p(path)))

    def delete(self, path: str) -> None:
        if self.local:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.lexists(path):
                os.remove(path)
        else:
            self._fs.delete(self._p(path), True)

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to a ``dst`` that must not exist yet."""
        if self.local:
            os.rename(src, dst)
        elif not self._fs.rename(self._p(src), self._p(dst)):
            raise OSError(f"rename {src} -> {dst} failed")

    def read_text(self, path: str) -> str | None:
        if not self.exists(path):
            return None
        if self.local:
            return Path(path).read_text(encoding="utf-8")
        stream = self._fs.open(self._p(path))
        try:
            reader = self._jvm.java.io.BufferedReader(
                self._jvm.java.io.InputStreamReader(stream, "UTF-8"))
            lines = []
            while (line := reader.readLine()) is not None:
                lines.append(line)
            return "\n".join(lines)
        finally:
            stream.close()

    def write_text(self, path: str, text: str) -> None:
        """Write-then-rename: readers see the old content or the new one, never a part."""
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        if self.local:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            return
        out = self._fs.create(self._p(tmp), True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()
        opts = self._jvm.org.apache.hadoop.fs.Options.Rename
        ctx = self._jvm.org.apache.hadoop.fs.FileContext.getFileContext(self._fs.getUri(),
                                                                         self._conf)
        ctx.rename(self._p(tmp), self._p(path), [opts.OVERWRITE])

    def create_exclusive(self, path: str, text: str) -> bool:
        """Create ``path`` only if it does not exist (a lock). False when it already exists."""
        if self.local:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            return True
        try:
            out = self._fs.create(self._p(path), False)
        except Exception:  # FileAlreadyExistsException through py4j
            return False
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()
        return True


def host_name() -> str:
    return socket.gethostname()
