"""What the config knows of each model, without importing torch: ``MODELS`` (a table, not an if
chain) maps a name to the config fields its constructor takes, what kind of input it wants and
the values its choices allow. :func:`embgraft.models.model_class` gives the class itself."""

from __future__ import annotations

from dataclasses import dataclass

from embgraft.errors import ConfigError

BAG_POOLINGS = ("mean", "max", "mean+max")
BILSTM_POOLINGS = ("max", "mean", "attention")
POSITIONS = ("learned", "sinusoidal")
# tokens kept per text when neither the config nor the graft's recipe says: a headline or a
# review fits; an ``hf`` encoder's attention costs grow with the square of the length
DEFAULT_MAX_LEN = 256
HF_DEFAULT_MAX_LEN = 128


@dataclass(frozen=True)
class ModelSpec:
    params: tuple[str, ...]  # TrainConfig fields passed as keyword arguments when set
    bag: bool = False  # order-free: n-gram rows join the bag
    ngrams: bool = False  # takes n-gram rows (``ngrams`` > 1): bags, and textcnn's n-gram bag branch
    hf: bool = False  # a Hugging Face encoder; texts may go through its own tokenizer
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (config field, its allowed values) for this model
    max_len: int = DEFAULT_MAX_LEN  # the default of tokens kept per text


MODELS: dict[str, ModelSpec] = {
    "bag": ModelSpec(("dropout", "pooling"), bag=True, ngrams=True, choices=(("pooling", BAG_POOLINGS),)),
    "textcnn": ModelSpec(("n_filters", "kernel_sizes", "dropout", "ngrams"), ngrams=True),
    "bilstm": ModelSpec(("hidden_dim", "n_layers", "pooling", "dropout"), choices=(("pooling", BILSTM_POOLINGS),)),
    "transformer": ModelSpec(("n_layers", "n_heads", "hidden_dim", "positions", "dropout", "max_positions"),
                             choices=(("positions", POSITIONS),)),
    "hf": ModelSpec(("dropout",), hf=True, max_len=HF_DEFAULT_MAX_LEN),
}


def model_spec(name: str) -> ModelSpec:
    spec = MODELS.get(name)
    if spec is None:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return spec
