"""Exceptions raised by embgraft. The CLI turns them into one-line messages."""

from __future__ import annotations


class EmbgraftError(Exception):
    """Base class: a problem with the user's input or configuration, not a bug."""


class ConfigError(EmbgraftError, ValueError):
    """A configuration that cannot work; the message lists every problem found."""


class MalformedFileError(EmbgraftError, ValueError):
    """A file that does not follow its format. The message names file and line."""

    def __init__(self, path: object, line_no: int | None, problem: str) -> None:
        where = f"{path}:{line_no}" if line_no is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.line_no = line_no
        self.problem = problem


class OutputExistsError(EmbgraftError, FileExistsError):
    """An output that already exists and would be overwritten without --force."""


class NonFiniteLossError(EmbgraftError):
    """Training produced a nan or infinite loss: the run stops, and nothing of it is kept as best."""


class CheckpointError(EmbgraftError):
    """A checkpoint that cannot be read: missing files, unknown layout, no such hub repository."""
