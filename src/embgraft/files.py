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
from typing import IO, Any, Iterator, Mapping

from embgraft.errors import MalformedFileError, OutputExistsError

_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(out: str | os.PathLike, *, force: bool) -> Path:
    out = Path(out)
    if out.exists() and not force:
        raise OutputExistsError(f"{out} exists; pass --force (force=True) to overwrite it")
    return out


def check_outputs(outs: list[str | os.PathLike | None], *, force: bool) -> list[Path]:
    """Every output of one command, checked before any is written: none may exist (without
    ``force``) and no two may be the same path."""
    paths = [check_writable(o, force=force) for o in outs if o is not None]
    resolved = [p.resolve() for p in paths]
    for i, p in enumerate(resolved):
        if p in resolved[:i]:
            raise OutputExistsError(f"{paths[i]} is given as two different outputs")
    return paths


@contextlib.contextmanager
def atomic_output(out: str | os.PathLike, *, force: bool, directory: bool) -> Iterator[Path]:
    """Yields a temporary path beside ``out`` -- an empty directory, or a file path to write --
    that becomes ``out`` when the block succeeds. ``out`` must not exist unless ``force``."""
    out = check_writable(out, force=force)
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


def atomic_dir(out: str | os.PathLike, *, force: bool) -> contextlib.AbstractContextManager[Path]:
    """:func:`atomic_output` for a directory."""
    return atomic_output(out, force=force, directory=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, force: bool, mode: str = "w") -> Iterator[IO]:
    """:func:`atomic_output` for a file, opened (UTF-8 text with ``\\n`` line ends unless binary)."""
    with atomic_output(path, force=force, directory=False) as tmp:
        kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": "\n"}
        with open(tmp, mode, **kwargs) as f:
            yield f


def write_json(path: str | os.PathLike, data: Any, *, force: bool = True) -> Path:
    """``data`` as UTF-8 JSON (non-ASCII kept, indented), written atomically."""
    with atomic_file(path, force=force) as f:
        json.dump(data, f, ensure_ascii=False, indent=2)
        f.write("\n")
    return Path(path)


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, Any], *, metadata: dict[str, str] | None = None,
                 force: bool = True) -> Path:
    """torch tensors as one safetensors file, written atomically. ``save_file`` streams the
    tensors to disk (``save`` would build the whole file as one bytes object first: a second copy
    of a checkpoint's weights and Adam moments in memory)."""
    from safetensors.torch import save_file

    with atomic_output(path, force=force, directory=False) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    return Path(path)


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
