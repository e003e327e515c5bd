"""Files Billfold keeps beside the database (invoice PDFs, print batches, file drops, mail),
under ``Settings.data_dir``. A key is a relative POSIX path such as
``tenants/<tenant_id>/<mode>/invoices/<invoice_id>.pdf``; keys, not paths, are what rows
store, so the data directory can move."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath

from billfold.core.errors import BillfoldError, NotFound


class UnsafeFileKey(BillfoldError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(detail=f"file key {key!r} {reason}", code="unsafe_file_key",
                         status=400, title="Unsafe file key")


def check_key(key: str) -> str:
    """``key`` if it names a file inside the store; UnsafeFileKey otherwise."""
    if not key:
        raise UnsafeFileKey(key, "is empty")
    if "\\" in key or "\0" in key:
        raise UnsafeFileKey(key, "contains a backslash or NUL")
    if key.startswith("/"):
        raise UnsafeFileKey(key, "is absolute")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeFileKey(key, "has an empty, '.' or '..' segment")
    return key


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root.joinpath(*PurePosixPath(check_key(key)).parts)

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key``, replacing any file there. Readers see the old
        file or the new one, never a part: it is written aside, then renamed over."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound("file", key) from None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()
