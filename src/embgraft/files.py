"""Files: outputs written beside their destination and renamed into place, the one JSON reader,
and the escaping of TSV fields.

:func:`atomic_output` is the one way embgraft writes a file or a directory (:func:`atomic_file`,
:func:`atomic_dir`, :func:`write_json` and :func:`save_tensors` are its shapes): the content goes
to a temporary path beside the destination, which takes the destination's place in one step
when the block succeeds. Replacing an existing directory swaps the two atomically on Linux
(``renameat2(RENAME_EXCHANGE)``), so there is no moment when neither the old output nor the
new one is in place; elsewhere the old one is moved aside first and moved back if the swap
fails. On failure the temporary path, and any parent folder made for it, are removed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import IO, Any, Iterator, Mapping, Sequence

from embgraft.errors import ConfigError, MalformedFileError, OutputExistsError

_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@dataclass(frozen=True)
class OutputKind:
    """What a command writes at its output path, so ``--force`` replaces only its own kind: a
    directory holding ``marker`` (a run directory holds ``config.json``), or a file
    (``marker`` None, ``directory`` False)."""

    what: str
    directory: bool
    marker: str | None = None


FILE = OutputKind("file", directory=False)
DIRECTORY = OutputKind("directory", directory=True)


def check_writable(out: str | os.PathLike, *, force: bool, kind: OutputKind | None = None,
                   inputs: Sequence[str | os.PathLike | None] = ()) -> Path:
    """``out`` may be written: it is not empty, not the working directory or one of its parents,
    not (and does not contain) any of ``inputs``; if it exists, ``force`` is given and it is of
    ``kind`` -- a file where a file goes, an empty directory or one holding the kind's marker
    where a directory goes. Raises :class:`OutputExistsError` (or :class:`ConfigError` for a path
    that can never be an output) naming the path."""
    if not str(out).strip():
        raise ConfigError("the output path is empty (an unset shell variable?)")
    out = Path(out)
    here, target = Path.cwd().resolve(), out.resolve()
    if target == here or target in here.parents:
        raise ConfigError(f"{out} is the working directory or one of its parents: give a folder of its own")
    for item in inputs:
        if item is None or not str(item).strip():
            continue
        source = Path(item).resolve()
        if source == target or target in source.parents:
            raise ConfigError(f"{out} is or contains the input {item}: write the output somewhere else")
    if not os.path.lexists(out):
        return out
    if not force:
        raise OutputExistsError(f"{out} exists; pass --force (force=True) to overwrite it")
    if kind is not None:
        if kind.directory and not out.is_dir():
            raise OutputExistsError(f"{out} is a file and a {kind.what} goes there; --force replaces only a "
                                    f"{kind.what}")
        if not kind.directory and out.is_dir():
            raise OutputExistsError(f"{out} is a directory and a {kind.what} goes there; --force replaces only "
                                    f"a {kind.what}")
        if kind.marker is not None and any(out.iterdir()) and not (out / kind.marker).exists():
            raise OutputExistsError(f"{out} is not a {kind.what} (it has no {kind.marker}); --force replaces only "
                                    f"a {kind.what}, so it is left as it is")
    return out


def check_outputs(outs: list, *, force: bool, inputs: Sequence[str | os.PathLike | None] = ()) -> list[Path]:
    """Every output of one command -- a path, or ``(path, kind)`` -- checked before any is written
    (:func:`check_writable`), and no two the same path."""
    pairs = [o if isinstance(o, tuple) else (o, None) for o in outs]
    paths = [check_writable(o, force=force, kind=k, inputs=inputs) for o, k in pairs if o is not None]
    resolved = [p.resolve() for p in paths]
    for i, p in enumerate(resolved):
        if p in resolved[:i]:
            raise OutputExistsError(f"{paths[i]} is given as two different outputs")
    return paths


@contextlib.contextmanager
def exclusive(out: str | os.PathLike) -> Iterator[None]:
    """Held while a command writes ``out`` over a long time (a training run): a second process
    writing the same path is refused at once instead of mixing its files in. A lock file beside
    ``out`` (``fcntl.flock``; where there is no fcntl, nothing is locked)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.parent / f".{out.name}.lock"
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputExistsError(f"{out} is being written by another embgraft process (lock {lock})") from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                lock.unlink()
            fcntl.flock(f, fcntl.LOCK_UN)


def temp_dir_beside(out: str | os.PathLike) -> Path:
    """An empty private directory beside ``out``, to be put in its place by :func:`put_in_place`."""
    out = Path(out)
    _make_parents(out.parent)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))


def put_in_place(tmp: Path, out: Path) -> None:
    """``tmp`` (from :func:`temp_dir_beside`) becomes ``out`` in one step, replacing what is there."""
    mask = _umask()
    for p in [tmp, *tmp.rglob("*")]:
        p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)
    _put_in_place(tmp, out, force=True)


def remove(path: str | os.PathLike) -> None:
    """Delete a file or a whole directory (a temporary one, or a run that failed before its first
    checkpoint)."""
    _remove(Path(path))


@contextlib.contextmanager
def atomic_output(out: str | os.PathLike, *, force: bool, directory: bool, kind: OutputKind | None = None,
                  inputs: Sequence[str | os.PathLike | None] = ()) -> Iterator[Path]:
    """Yields a temporary path beside ``out`` -- an empty directory, or a file path to write --
    that becomes ``out`` when the block succeeds. ``out`` must not exist unless ``force``, and
    then only as ``kind`` (default: a directory where a directory goes, a file where a file goes)."""
    out = check_writable(out, force=force, kind=kind or (DIRECTORY if directory else FILE), inputs=inputs)
    made = _make_parents(out.parent)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", dir=out.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        # mkdtemp/mkstemp make private (0700/0600) paths; the output gets the usual modes
        mask = _umask()
        tmp.chmod((0o777 if directory else 0o666) & ~mask)
        if directory:
            for p in tmp.rglob("*"):
                p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)
        _put_in_place(tmp, out, force=force)
    except BaseException:
        _remove(tmp)
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()  # only if still empty
        raise


def atomic_dir(out: str | os.PathLike, *, force: bool, kind: OutputKind | None = None,
               inputs: Sequence[str | os.PathLike | None] = ()) -> contextlib.AbstractContextManager[Path]:
    """:func:`atomic_output` for a directory."""
    return atomic_output(out, force=force, directory=True, kind=kind, inputs=inputs)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, force: bool, mode: str = "w",
                inputs: Sequence[str | os.PathLike | None] = ()) -> Iterator[IO]:
    """:func:`atomic_output` for a file, opened (UTF-8 text with ``\\n`` line ends unless binary)."""
    with atomic_output(path, force=force, directory=False, inputs=inputs) as tmp:
        kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": "\n"}
        with open(tmp, mode, **kwargs) as f:
            yield f


def write_json(path: str | os.PathLike, data: Any, *, force: bool = True) -> Path:
    """``data`` as strict UTF-8 JSON (non-ASCII kept, indented), written atomically: a NaN or
    infinite float, which strict parsers refuse, is written as ``null``."""
    with atomic_file(path, force=force) as f:
        json.dump(_strict(data), f, ensure_ascii=False, indent=2, allow_nan=False)
        f.write("\n")
    return Path(path)


def _strict(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, Any], *, metadata: dict[str, str] | None = None,
                 force: bool = True) -> Path:
    """torch tensors as one safetensors file, written atomically. ``save_file`` streams the
    tensors to disk (``save`` would build the whole file as one bytes object first: a second copy
    of a checkpoint's weights and Adam moments in memory)."""
    from safetensors.torch import save_file

    with atomic_output(path, force=force, directory=False) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    return Path(path)


_MAX_SAFETENSORS_HEADER = 100 * 2**20


def read_safetensors_header(path: str | os.PathLike) -> tuple[dict[str, Any], int]:
    """A safetensors file's JSON header and the byte offset its tensor data starts at (8 bytes
    of little-endian header length, the header, then the data; each entry's ``data_offsets``
    count from that start). Only the header is read: the safetensors library gives dtypes and
    shapes but not the offsets that positioned and chunked reads need. A file that is not
    safetensors is a :class:`MalformedFileError`."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < n <= _MAX_SAFETENSORS_HEADER:
            raise MalformedFileError(path, None, "not a safetensors file (bad header length)")
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError):
            raise MalformedFileError(path, None, "not a safetensors file (bad header)") from None
    if not isinstance(header, dict):
        raise MalformedFileError(path, None, "not a safetensors file (bad header)")
    return header, 8 + n


_REQUIRED = object()


def read_json(path: str | os.PathLike, *, default: Any = _REQUIRED, expect: type | None = None) -> Any:
    """The JSON value in ``path`` (UTF-8, a BOM allowed): every JSON file embgraft reads goes
    through here. A missing file gives ``default`` when one is given, else a
    :class:`MalformedFileError` saying so; bad JSON names the line; ``expect`` (``dict`` or
    ``list``) is the type the top level must have."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        if default is not _REQUIRED:
            return default
        raise MalformedFileError(path, None, "missing") from None
    except UnicodeDecodeError as e:
        raise MalformedFileError(path, None, f"not UTF-8 text ({e.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise MalformedFileError(path, e.lineno, f"bad JSON: {e.msg}") from None
    if expect is not None and not isinstance(data, expect):
        what = {dict: "a JSON object", list: "a JSON array"}.get(expect, expect.__name__)
        raise MalformedFileError(path, None, f"expected {what}, found {type(data).__name__}")
    return data


# -- TSV fields ------------------------------------------------------------------------------------
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {v[1]: k for k, v in _ESCAPES.items()}
_ESCAPE_RE = re.compile(r"[\\\t\n\r]")
_UNESCAPE_RE = re.compile(r"\\(.?)", re.DOTALL)


def escape_field(text: str) -> str:
    """``text`` with backslash, tab, newline and carriage return written as ``\\\\ \\t \\n \\r``,
    so it fits one field of a tab-separated line (vocab.txt, provenance.tsv, errors.tsv)."""
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], text)


def unescape_field(text: str) -> str:
    """Inverse of :func:`escape_field`; raises ``ValueError`` on an unknown escape."""

    def one(m: re.Match[str]) -> str:
        char = _UNESCAPES.get(m.group(1))
        if char is None:
            raise ValueError(f"unknown escape {m.group()!r} (known: \\\\ \\t \\n \\r)")
        return char

    return _UNESCAPE_RE.sub(one, text)


# -- the one step ------------------------------------------------------------------------------------
def _put_in_place(tmp: Path, out: Path, *, force: bool) -> None:
    if not force:  # one step that fails if something took ``out`` meanwhile
        if not _renameat2(tmp, out, _RENAME_NOREPLACE):
            check_writable(out, force=False)
            os.rename(tmp, out)
        return
    if not os.path.lexists(out) or (not out.is_dir() and not tmp.is_dir()):
        os.replace(tmp, out)  # atomic for a file over a file, or onto nothing
        return
    if _renameat2(tmp, out, _RENAME_EXCHANGE):
        _remove(tmp)  # the old output, swapped out
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    _remove(old)


_libc = None


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """Linux ``renameat2``; False where the platform, libc or filesystem does not have it."""
    global _libc
    import ctypes

    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols: libc's on Linux
        except OSError:
            _libc = False
    fn = getattr(_libc, "renameat2", None) if _libc else None
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    if err == errno.EEXIST:
        raise OutputExistsError(f"{dst} exists; pass --force (force=True) to overwrite it")
    raise OSError(err, os.strerror(err), str(dst))


def _make_parents(parent: Path) -> list[Path]:
    """Creates ``parent`` and its missing ancestors; returns those made, outermost first."""
    missing = []
    p = parent
    while not p.exists():
        missing.append(p)
        p = p.parent
    parent.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
