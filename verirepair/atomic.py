"""Atomic file output: write to a temporary file beside the target, then rename.

Every output verirepair writes (networks, reports, result files) goes through
here, so that an interrupted run never leaves a half-written file behind and a
reader never sees one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (same-directory temp file + ``os.replace``).

    Returns
    -------
    Path -- the path written
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give outputs the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def check_writable(path: Path, what: str = "output", directory: bool = False) -> None:
    """Raise :class:`~verirepair.errors.OutputError` unless ``path`` can be written.

    Called before any work starts, so that an unwritable ``--out`` is found in a
    second, not after an hour of repair.  The nearest existing ancestor must be
    a directory in which a file can actually be created: a probe file is made
    and removed (``os.access`` says yes to root even on a read-only mount).
    Nothing is left behind; missing folders are not created here.

    Parameters
    ----------
    path : Path -- the file (or, with ``directory=True``, the folder) to be written
    what : str -- how the message names it (e.g. ``"--out"``)
    directory : bool -- ``path`` is a folder that will receive files
    """
    from verirepair.errors import OutputError

    path = Path(path)
    if path.exists():
        if directory and not path.is_dir():
            raise OutputError(f"{what} {path} is an existing file, expected a folder")
        if not directory and path.is_dir():
            raise OutputError(f"{what} {path} is a folder, expected a file name")
    probe_dir = path if directory and path.is_dir() else path.parent
    while not probe_dir.exists():
        if probe_dir == probe_dir.parent:
            break
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise OutputError(f"{what} {path} cannot be created: {probe_dir} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".verirepair-write-probe.", dir=probe_dir)
    except OSError as exc:
        raise OutputError(f"{what} {path} cannot be written: {probe_dir}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    if path.exists() and not directory and not os.access(path, os.W_OK) and os.geteuid() != 0:
        raise OutputError(f"{what} {path} exists and is read-only")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
