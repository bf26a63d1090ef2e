"""``GraftConfig``: how to graft, and the choice tables it is validated against."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from embgraft.errors import ConfigError
from embgraft.grafting.compose import COMPOSE_BYTES, POOLINGS
from embgraft.text.normalise import check_rules

INIT_METHODS = ("normal", "uniform", "zeros", "mean")
# result dtype -> the dtype rows are read and computed in (float16/bfloat16 are rounded once, last)
DTYPES = {"float32": "float32", "float16": "float32", "bfloat16": "float32", "float64": "float64"}


@dataclass
class GraftConfig:
    """How to graft. Every field has a default a careful user would pick."""

    normalise: tuple[str, ...] = field(default=("nfkc", "lower", "t2s"), metadata={
        "help": "normalisation rules, tried in this order; () for none"})
    compose: str = field(default="mean", metadata={
        "help": "pool absent words from their pieces: mean | sum | max | first | last | off"})
    compose_min_coverage: float = field(default=1.0, metadata={
        "help": "share of a word's characters its known pieces must cover"})
    compose_bytes: str = field(default="on", metadata={
        "help": "compose from byte-level BPE pieces (provenance composed:bytes): on | off"})
    max_piece_chars: int = field(default=4, metadata={
        "help": "longest sub-word tried when composing from a vector file"})
    init: str = field(default="normal", metadata={
        "help": "rows left over: normal | uniform | zeros | mean, fitted on the rows found"})
    seed: int = field(default=0, metadata={"help": "seed of the initialised rows"})
    scale: float = field(default=1.0, metadata={"help": "multiplies every row last"})
    centre: bool = field(default=False, metadata={"help": "subtract the mean of the found rows"})
    unit_norm: bool = field(default=False, metadata={"help": "scale every row to L2 norm 1"})
    dim: int | None = field(default=None, metadata={
        "help": "target width, reached by PCA fitted on the found rows"})
    dtype: str = field(default="float32", metadata={
        "help": "of the result, in memory and on disk: float32 | float64 | float16 | bfloat16"})
    special_map: dict[str, str] = field(default_factory=dict, metadata={
        "help": "our special -> the source's token for the same role (checkpoints fill it themselves)"})

    def __post_init__(self) -> None:
        self.normalise = tuple(self.normalise)
        errors = check_rules(self.normalise)
        if self.compose != "off" and self.compose not in POOLINGS:
            errors.append(f"compose must be one of {['off', *POOLINGS]}, not {self.compose!r}")
        if self.compose_bytes not in COMPOSE_BYTES:
            errors.append(f"compose_bytes must be one of {list(COMPOSE_BYTES)}, not {self.compose_bytes!r}")
        if not 0.0 < self.compose_min_coverage <= 1.0:
            errors.append(f"compose_min_coverage must be in (0, 1], not {self.compose_min_coverage}")
        if self.max_piece_chars < 1:
            errors.append(f"max_piece_chars must be >= 1, not {self.max_piece_chars}")
        if self.init not in INIT_METHODS:
            errors.append(f"init must be one of {list(INIT_METHODS)}, not {self.init!r}")
        if not np.isfinite(self.scale) or self.scale == 0:
            errors.append(f"scale must be a non-zero finite number, not {self.scale}")
        if self.dim is not None and self.dim < 1:
            errors.append(f"dim must be a positive width, not {self.dim}")
        if self.dtype not in DTYPES:
            errors.append(f"dtype must be one of {list(DTYPES)}, not {self.dtype!r}")
        if errors:
            raise ConfigError("invalid graft config: " + "; ".join(errors))

    @property
    def work_dtype(self) -> np.dtype:
        """The dtype rows are read and computed in (float64 only when asked for)."""
        return np.dtype(DTYPES[self.dtype])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["normalise"] = list(self.normalise)
        return d
