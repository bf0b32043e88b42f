"""Reading inputs and writing outputs: the only module that touches Parquet files.

Inputs are read with `read_parquet` (any unreadable file is exit 66) and, for mmplan's
tables, `read_table`, which also checks the contract in `mmplan.tables`.

Outputs are never written in place. A file goes to a temporary name beside its target
and is renamed over it once complete; a folder is built beside its target and swapped
in. A killed run therefore leaves either the old output or the new one, never a mix.
Each output is guarded by a lock (flock, released by the OS when a process dies, so a
killed run cannot leave a lock that blocks forever; a run that ends removes it).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from mmplan.errors import InputFileError, LockedError, OutputError
from mmplan.logs import checkpoint, output_in_place
from mmplan.tables import check, normalise, validate

__all__ = [
    "read_parquet",
    "read_table",
    "write_parquet",
    "write_json",
    "output_folder",
    "check_output_folder",
    "check_output_file",
    "output_lock",
    "sha256_file",
    "provenance",
    "read_provenance",
    "METADATA_KEY",
]

METADATA_KEY = b"mmplan"


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes, streamed so large inputs cost no memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# SHA-256 of each input as it was read, by resolved path: provenance records these, so a
# file replaced while a long run works on the old one is traced to what was really used.
_READ_HASHES: dict[Path, str] = {}


def read_parquet(path: str | Path, what: str = "input") -> pl.DataFrame:
    """Read a Parquet file, turning every way it can be unreadable into exit 66."""
    path = Path(path)
    try:
        size = path.stat().st_size if path.exists() and not path.is_dir() else None
    except OSError as exc:  # e.g. ENAMETOOLONG: a name the file system cannot hold
        raise InputFileError(f"{what} file {path} cannot be read: {exc.strerror}.") from None
    if not path.exists():
        raise InputFileError(f"{what} file not found: {path}. Check the path and try again.")
    if path.is_dir() or size is None:
        raise InputFileError(f"{what} path {path} is a folder; give the Parquet file inside it.")
    if size == 0:
        raise InputFileError(
            f"{what} file {path} is empty (0 bytes); it is not a Parquet file. "
            "Re-run the step that produced it."
        )
    if size < 12:  # magic + footer length + magic
        raise InputFileError(
            f"{what} file {path} is not a readable Parquet file: it is only "
            f"{size} bytes (truncated?). Re-run the step that produced it."
        )
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            handle.seek(-4, os.SEEK_END)
            tail = handle.read(4)
    except OSError as exc:
        raise InputFileError(f"{what} file {path} cannot be read: {exc.strerror}.") from None
    if head != b"PAR1" or tail != b"PAR1":
        hint = (
            "it looks truncated (the Parquet footer is missing)"
            if head == b"PAR1"
            else "it does not start with the Parquet magic bytes (is it CSV or JSON renamed?)"
        )
        raise InputFileError(
            f"{what} file {path} is not a readable Parquet file: {hint}. "
            "Re-run the step that produced it, or convert it to Parquet."
        )
    try:
        digest = sha256_file(path)
        # glob=False: a name with [ ] or * is that file, not a pattern over its neighbours.
        table = pl.read_parquet(path, glob=False)
        _READ_HASHES[path.resolve()] = digest
        return table
    except Exception as exc:  # pyarrow/polars raise many types for corrupt files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(
            f"{what} file {path} is not a readable Parquet file ({first_line}). "
            "Re-run the step that produced it."
        ) from None


def read_table(
    path: str | Path,
    kind: str,
    nodes: pl.DataFrame | None = None,
    max_gap_days: int | None = None,
) -> pl.DataFrame:
    """Read a table of `kind` and check its contract (exit 65 listing every problem);
    volume-like columns come back as Float64. `nodes` lets lanes name known facilities;
    `max_gap_days` refuses a history with a longer stretch without rows."""
    df = read_parquet(path, what=kind)
    check(validate(df, kind, nodes, max_gap_days=max_gap_days), path, kind)
    return normalise(df)


def read_provenance(path: str | Path) -> dict[str, Any] | None:
    """The provenance record mmplan stored in a Parquet file's metadata, if any."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:
        return None
    raw = meta.get(METADATA_KEY)
    return json.loads(raw) if raw else None


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour shapes an output (only those imported)."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["mmplan", "polars", "pyarrow", "statsforecast", "hierarchicalforecast", "ortools"]
    versions = {}
    for name in names:
        with contextlib.suppress(PackageNotFoundError):
            versions[name] = version(name)
    return versions


def provenance(
    command: str,
    config: dict[str, Any],
    inputs: dict[str, str | Path] | None = None,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The record stored with every output: what made it, from what, and how long it took."""
    return {
        "command": command,
        "versions": library_versions(),
        "config": config,
        "inputs": {
            name: {
                "path": str(path),
                "sha256": _READ_HASHES.get(Path(path).resolve()) or sha256_file(path),
            }
            for name, path in (inputs or {}).items()
        },
        "timings": {k: round(v, 3) for k, v in (timings or {}).items()},
    }


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_beside(target: Path, suffix: str = ".tmp") -> Path:
    parent = target.parent
    if not parent.is_dir():
        raise OutputError(
            f"cannot write {target}: folder {parent} does not exist. Create it first."
        )
    try:
        fd, name = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.", suffix=suffix)
    except OSError as exc:
        raise OutputError(
            f"cannot write {target}: {exc.strerror} in folder {parent}. "
            "Check that it is writable and has free space."
        ) from None
    os.close(fd)
    # mkstemp makes 0600 files; an output should get the usual permissions.
    os.chmod(name, 0o666 & ~_umask())
    return Path(name)


def _replace(tmp: Path, target: Path) -> None:
    try:
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {exc.strerror}.") from None


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM over steps that must not be split (a rename and the record
    that it happened); the signal is raised when they are done.

    Python raises a signal in the main thread at its next check, which may be some
    bytecodes after it arrived: without the hold it could land between the two steps."""
    stops = (signal.SIGINT, signal.SIGTERM)
    # Handlers can be swapped in the main thread only, and one set outside Python (None
    # here) could not be put back.
    if threading.current_thread() is not threading.main_thread() or any(
        signal.getsignal(sig) is None for sig in stops
    ):
        yield
        return
    held: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _: held.append(signum)) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if held:
            handler = previous[signal.Signals(held[0])]
            if callable(handler):
                handler(held[0], None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), held[0])


def _rename_into_place(tmp: Path, target: Path, checkpoints: str) -> None:
    """Rename the complete `tmp` over `target`; a signal before the rename removes `tmp`,
    one after it is raised once the rename is recorded (the stop message names it)."""
    try:
        checkpoint(f"{checkpoints}.renaming")
        with _signals_held():
            _replace(tmp, target)
            output_in_place(target)
    except BaseException:
        tmp.unlink(missing_ok=True)  # gone already if the rename happened
        raise
    checkpoint(f"{checkpoints}.renamed")


def write_parquet(df: pl.DataFrame, path: str | Path, record: dict[str, Any] | None) -> Path:
    """Write `df` to `path` atomically, with `record` in the Parquet key-value metadata."""
    import pyarrow.parquet as pq

    target = Path(path)
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a folder. Give a file name.")
    tmp = _temp_beside(target)
    try:
        table = df.to_arrow()
        meta = dict(table.schema.metadata or {})
        if record is not None:
            meta[METADATA_KEY] = json.dumps(record, sort_keys=True, default=str).encode()
        table = table.replace_schema_metadata(meta)
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {exc.strerror}.") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _rename_into_place(tmp, target, "write_parquet")
    return target


def write_json(data: Any, path: str | Path) -> Path:
    """Write JSON atomically (for summaries and manifests)."""
    return write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", path)


def _check_parent(path: str | Path, target: Path) -> None:
    """OutputError unless the folder an output goes into exists and is writable."""
    parent = target.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {parent} does not exist. Create it first.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(
            f"cannot write {path}: folder {parent} is not writable. Check its permissions "
            "or write the output elsewhere."
        )


def check_output_folder(path: str | Path, inputs: tuple[str | Path | None, ...] = ()) -> None:
    """Refuse an output folder whose swap would destroy files mmplan did not write, or
    that cannot be written (a file in its place, no writable folder to put it in).

    A folder output replaces the whole folder, so it must be new, empty, or an earlier
    mmplan output (it has a manifest.json), and no input of the run may lie inside it.
    """
    target = Path(path).resolve()
    _check_parent(path, target)
    if target.exists() and not target.is_dir():
        raise OutputError(f"cannot write folder {path}: a file of that name is in the way.")
    for item in inputs:
        if item is not None and Path(item).resolve().is_relative_to(target):
            raise OutputError(
                f"cannot write folder {path}: the input {item} is inside it, and mmplan "
                "replaces its output folder whole. Write the output to another folder."
            )
    if target.is_dir() and not (target / "manifest.json").is_file():
        found = sorted(p.name for p in target.iterdir() if not p.name.startswith("."))
        if found:
            raise OutputError(
                f"cannot write folder {path}: it holds files mmplan did not write "
                f"({', '.join(found[:5])}{', ...' if len(found) > 5 else ''}), and mmplan "
                "replaces its output folder whole. Give a new or empty folder."
            )


def check_output_file(path: str | Path, inputs: tuple[str | Path | None, ...] = ()) -> None:
    """Refuse a file output that is one of the run's inputs: the rename would replace it,
    so a slip of `-o` would destroy the data the run was made from; also a folder in its
    place, or a missing or read-only folder to put it in. Called before any work."""
    target = Path(path).resolve()
    if target.is_dir():
        empty = " (an empty path is the current folder)" if str(path) in ("", ".") else ""
        raise OutputError(f"cannot write {path}: it is a folder{empty}. Give a file name.")
    _check_parent(path, target)
    for item in inputs:
        if item is not None and Path(item).resolve() == target:
            raise OutputError(
                f"cannot write {path}: it is an input of this run ({item}), and writing the "
                "output would replace it. Give the output another file name."
            )


@contextlib.contextmanager
def output_folder(path: str | Path, record: dict[str, Any] | None = None) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `path`; on success swap it in as `path`.

    With `record` (see `provenance`), a manifest.json is added last: the record plus the
    SHA-256 of every file in the folder. On any failure the temporary folder is removed and
    an existing `path` is untouched. The folder is mmplan's: the swap replaces it whole, so
    keep other files elsewhere.
    """
    target = Path(path).resolve()  # "." has no name to put a temporary folder beside
    inputs = tuple(v["path"] for v in (record or {}).get("inputs", {}).values())
    check_output_folder(target, inputs)
    parent = target.parent
    if not parent.is_dir():
        raise OutputError(
            f"cannot write {target}: folder {parent} does not exist. Create it first."
        )
    if target.exists() and not target.is_dir():
        raise OutputError(f"cannot write folder {target}: a file of that name is in the way.")
    try:
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{target.name}.", suffix=".tmp"))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
    except OSError as exc:
        raise OutputError(
            f"cannot write {target}: {exc.strerror} in folder {parent}. "
            "Check that it is writable and has free space."
        ) from None
    old: Path | None = None  # set before: nothing may run between the two try blocks
    try:
        yield tmp
        if record is not None:
            files = {
                p.relative_to(tmp).as_posix(): sha256_file(p)
                for p in sorted(tmp.rglob("*"))
                if p.is_file()
            }
            write_json(record | {"files": files}, tmp / "manifest.json")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        checkpoint("output_folder.swapping")
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=parent, prefix=f".{target.name}.", suffix=".old"))
            os.rmdir(old)
            os.replace(target, old)
            checkpoint("output_folder.old-moved")
        with _signals_held():  # the new folder in place, recorded and the old one removed
            os.replace(tmp, target)
            output_in_place(target)
            checkpoint("output_folder.swapped")
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:  # a failed rename, or Ctrl-C / SIGTERM before the swap
        if old is not None and old.exists() and not target.exists():
            os.replace(old, target)  # put the previous output back
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {target}: {exc.strerror}.") from None
        raise


def _recover(target: Path) -> None:
    """Tidy what a killed earlier run left beside `target`; safe because we hold its lock.

    A run killed between the two renames of a folder swap leaves the previous output as
    `.<name>.*.old` and nothing at `target`: put it back. Temporary files and folders of
    dead runs are removed.
    """
    olds = sorted(target.parent.glob(f".{glob.escape(target.name)}.*.old"))
    if olds and not target.exists():
        os.replace(olds[-1], target)
        olds = olds[:-1]
    for stale in [*olds, *target.parent.glob(f".{glob.escape(target.name)}.*.tmp")]:
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _holder_info(info_path: Path) -> str:
    try:
        return info_path.read_text(encoding="utf-8").strip() or "an unknown process"
    except OSError:
        return "an unknown process"


_LOG = logging.getLogger("mmplan.io")
_RETRY_SECONDS = 0.05


def _try_lock(lock_path: Path) -> int | None:
    """An fd holding the exclusive lock on `lock_path`, or None while another run holds it.

    The lock file is removed by the run that releases it (nothing piles up beside the
    outputs). A run that opened the file just before that finds, once it gets the lock,
    that the path now names another file or none: its lock excludes nobody, so it tries
    again on the file now at the path.
    """
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            raise
        try:
            mine = os.stat(lock_path)
            held = os.fstat(fd)
            if (mine.st_ino, mine.st_dev) == (held.st_ino, held.st_dev):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


# A release interrupted by a signal is begun again; each try is cheap and idempotent.
_RELEASE_TRIES = 5


def _release(fd: int, lock_path: Path, info_path: Path) -> None:
    """Remove the lock files and close the lock; safe to call again if interrupted."""
    checkpoint("output_lock.releasing")
    # Removed while still held, so no other run can be holding the file removed.
    with contextlib.suppress(OSError):
        info_path.unlink()
    with contextlib.suppress(OSError):
        lock_path.unlink()
    with contextlib.suppress(OSError):  # EBADF when an interrupted try had closed it
        os.close(fd)


@contextlib.contextmanager
def output_lock(path: str | Path, wait: float = 0.0) -> Iterator[None]:
    """Hold an exclusive lock on output `path` for the duration of a run.

    With `wait` = 0 a second run fails at once (exit 75) naming the holder; otherwise it
    waits up to `wait` seconds. The lock is an OS file lock (flock), so a killed holder
    frees it; a run that ends (also by Ctrl-C or SIGTERM) removes its lock files.
    """
    target = Path(path).resolve()
    if not target.parent.is_dir():
        raise OutputError(
            f"cannot write {target}: folder {target.parent} does not exist. Create it first."
        )
    lock_path = target.parent / f".{target.name}.lock"
    info_path = target.parent / f".{target.name}.lock.holder"
    deadline = time.monotonic() + wait
    try:
        while (fd := _try_lock(lock_path)) is None:
            if time.monotonic() >= deadline:
                raise LockedError(
                    f"another run holds the lock on {target} ({_holder_info(info_path)}). "
                    "Try again later, or pass --wait SECONDS to wait for it."
                )
            _LOG.debug("lock %s not acquired; waiting", lock_path)
            time.sleep(_RETRY_SECONDS)
    except OSError as exc:
        raise OutputError(f"cannot lock {target}: {exc.strerror} at {lock_path}.") from None
    try:
        _recover(target)
        with contextlib.suppress(OSError):
            info_path.write_text(
                f"pid {os.getpid()} on {socket.gethostname()}, started "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv[:3])}",
                encoding="utf-8",
            )
        yield
    finally:
        # A Ctrl-C or SIGTERM that lands here (just after a run's last output was renamed
        # into place) must not skip the release and leave the lock files behind: the
        # release is finished first and the interrupt raised after it.
        interrupted: BaseException | None = None
        for _ in range(_RELEASE_TRIES):
            try:
                _release(fd, lock_path, info_path)
                break
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted


__all__ += ["write_text"]


def write_text(text: str, path: str | Path) -> Path:
    """Write a text file (JUnit XML, markdown) atomically, as `write_json` does JSON."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a folder. Give a file name.")
    tmp = _temp_beside(target)
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {exc.strerror}.") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _rename_into_place(tmp, target, "write_text")
    return target
