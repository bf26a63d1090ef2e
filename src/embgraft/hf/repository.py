"""A checkpoint's files, from a local directory or a hub repository, as one object
(:class:`Repository`, after curated-transformers' ``Repository``); what a hub id looks like; the
hub itself through ``huggingface_hub``, imported lazily."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from embgraft.errors import CheckpointError

# The hub's own rule for a repository id: ``name`` (a legacy model such as ``bert-base-chinese``
# or ``gpt2``) or ``owner/name``; each part of letters, digits, ``-``, ``_`` and ``.``, neither
# starting nor ending with ``-`` or ``.``, without ``--`` or ``..``, 96 characters at most.
_PART = r"[A-Za-z0-9](?:[\w.\-]*[A-Za-z0-9_])?"
HUB_ID = re.compile(rf"(?:{_PART}/)?{_PART}", re.ASCII)
HUB_ID_MAX_CHARS = 96


def looks_like_hub_id(spec: object) -> bool:
    """True when ``spec`` is spelt as a hub repository id, with or without an owner.

    The one definition used wherever a path that does not exist may be a hub id (the source
    kinds and ``extend``). It says nothing about whether the repository exists.
    """
    return (isinstance(spec, str) and len(spec) <= HUB_ID_MAX_CHARS and HUB_ID.fullmatch(spec) is not None
            and "--" not in spec and ".." not in spec)


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_offline() -> bool:
    """The hub's offline switch, read now (the library reads the environment once, at import)."""
    from huggingface_hub import constants

    # is_offline_mode() is newer than the HF_HUB_OFFLINE constant: take whichever this version has
    is_offline = getattr(constants, "is_offline_mode", None)
    flag = is_offline() if callable(is_offline) else getattr(constants, "HF_HUB_OFFLINE", False)
    return bool(flag or _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE"))


class HubFiles:
    """Fetches files of one hub repository on demand (from the local cache when offline)."""

    def __init__(self, repo_id: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                 local_files_only: bool | None = None) -> None:
        self.repo_id = repo_id
        self.revision = revision
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.local_files_only = hub_offline() if local_files_only is None else local_files_only

    def snapshot(self, patterns: Sequence[str]) -> Path:
        """The local snapshot folder, holding at least the files matching ``patterns``."""
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(self.repo_id, revision=self.revision, cache_dir=self.cache_dir,
                                          allow_patterns=list(patterns),
                                          local_files_only=self.local_files_only))
        except Exception as exc:  # hub errors are many and version-dependent; the message is what matters
            where = "in the local hub cache" if self.local_files_only else "on the hub or in the local cache"
            raise CheckpointError(f"{self.repo_id}: no such file or directory, and no such repository {where} "
                                  f"({_first_line(exc)})") from None

    def file(self, filename: str) -> Path | None:
        """One file of the repository, or None when the repository (or, offline, the cache)
        does not have it."""
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import EntryNotFoundError

        try:
            return Path(hf_hub_download(self.repo_id, filename, revision=self.revision, cache_dir=self.cache_dir,
                                        local_files_only=self.local_files_only))
        except EntryNotFoundError:
            return None
        except Exception as exc:
            raise CheckpointError(f"cannot fetch {filename} of {self.repo_id!r}: {_first_line(exc)}") from None


# what a hub download of a whole model fetches (weights for PyTorch only)
HUB_MODEL_FILES = ("*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken")
HUB_BIN_FILES = ("pytorch_model*.bin",)


class Repository:
    """``spec`` as a source of files: a local directory as it is, or a hub id (``name`` or
    ``owner/name``) fetched on demand (``revision``: a branch, tag or commit; offline --
    ``HF_HUB_OFFLINE=1`` or ``local_files_only=True`` -- from the hub cache). The one place that
    tells a directory from a hub id, for the checkpoint source and for ``extend``."""

    def __init__(self, spec: str | os.PathLike, *, revision: str | None = None,
                 cache_dir: str | os.PathLike | None = None, local_files_only: bool | None = None,
                 what: str = "checkpoint directory") -> None:
        self.spec = str(spec)
        self.notes: list[str] = []
        path = Path(spec)
        self.hub: HubFiles | None = None
        if path.is_dir():
            if revision is not None:
                self.notes.append(f"revision {revision!r} ignored: {spec} is a local directory")
            self.local: Path | None = path
        elif looks_like_hub_id(spec) and not path.exists():
            self.local = None
            self.hub = HubFiles(self.spec, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        else:
            raise FileNotFoundError(f"no {what} {spec}, and not a hub id")

    @property
    def is_hub(self) -> bool:
        return self.hub is not None

    def snapshot(self, patterns: Sequence[str]) -> Path:
        """A local folder holding at least the files matching ``patterns`` (a local directory: itself)."""
        return self.local if self.hub is None else self.hub.snapshot(patterns)

    def file(self, filename: str) -> Path | None:
        """One file, or None when the repository does not have it."""
        if self.hub is None:
            path = self.local / filename
            return path if path.is_file() else None
        return self.hub.file(filename)

    def model_dir(self, *, trust_remote_code: bool = False) -> Path:
        """A folder holding the whole model for ``from_pretrained``: a hub repository's config,
        tokenizer and weights (safetensors, else ``pytorch_model*.bin``; its ``*.py`` only with
        ``trust_remote_code``)."""
        if self.hub is None:
            return self.local
        patterns = HUB_MODEL_FILES + (("*.py",) if trust_remote_code else ())
        folder = self.hub.snapshot(patterns)
        if not any(folder.glob("*.safetensors")):
            folder = self.hub.snapshot(patterns + HUB_BIN_FILES)
        return folder


def _first_line(exc: BaseException) -> str:
    """Hub errors span several lines; the CLI prints one."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["HUB_ID", "HubFiles", "Repository", "hub_offline", "looks_like_hub_id"]
