"""``hf``: a Hugging Face encoder as a sequence classifier.

Two ways in:
- the encoder's own tokenizer and input embedding (no graft): the ``[CLS]`` state feeds the
  classifier; a model made by ``embgraft extend`` is just such an encoder;
- a grafted embedding in place of the encoder's input embedding (a graft whose width is the
  encoder's hidden size, e.g. jieba words grafted from that same checkpoint): rows are fed as
  ``inputs_embeds``, the states are mean-pooled.

``configure_layers`` chooses the encoder layers that train; ``parameter_depths`` gives each
layer's distance from the top for layer-wise LR decay (Howard & Ruder). The encoder is built
by the caller (``training.prepare``), so this module imports no transformers.
"""

from __future__ import annotations

import torch
from torch import nn

from embgraft.errors import ConfigError
from embgraft.models.base import TextClassifier


def layer_list(encoder) -> nn.ModuleList:
    """The encoder's stack of layers: the ModuleList as long as ``config.num_hidden_layers``."""
    n = getattr(encoder.config, "num_hidden_layers", None)
    found = [(name, m) for name, m in encoder.named_modules() if isinstance(m, nn.ModuleList) and len(m) == n]
    if not found:
        raise ConfigError(f"cannot find the {n} layers of {type(encoder).__name__} for --train-layers")
    return min(found, key=lambda nm: nm[0].count("."))[1]


class HFClassifier(TextClassifier):
    def __init__(self, *, encoder, n_classes: int, pad_id: int, embedding=None, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.embedding = embedding  # TokenEmbedding of grafted rows, or None: the encoder's own
        self.pad_id = pad_id
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(encoder.config.hidden_size, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` (B, T) -> logits (B, n_classes)."""
        mask = (ids != self.pad_id).long()
        if self.embedding is None:
            h = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = h[:, 0]  # the [CLS] state the encoder was pre-trained to summarise with
        else:
            h = self.encoder(inputs_embeds=self.embedding(ids), attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp_min(1)
        return self.out(self.dropout(pooled))

    def embedding_parameters(self) -> list[nn.Parameter]:
        if self.embedding is not None:
            return [self.embedding.trainable]
        return list(self.encoder.get_input_embeddings().parameters())

    @property
    def embedding_depth(self) -> int:
        """The input rows sit below every layer: their default rate is the bottom one."""
        return len(layer_list(self.encoder))

    def configure_layers(self, train_layers: str) -> None:
        """Freeze the encoder layers ``train_layers`` excludes (and, for ``none``, the rest of
        the encoder around them); the input embedding is the fine-tuning mode's business."""
        layers = layer_list(self.encoder)
        which, _, k = train_layers.partition(":")
        n = len(layers)
        keep = {"all": range(n), "none": range(0), "first": range(min(int(k or 0), n)),
                "last": range(max(n - int(k or 0), 0), n)}[which]
        emb_ids = {id(p) for p in self.embedding_parameters()}
        for p in self.encoder.parameters():
            if id(p) not in emb_ids:
                p.requires_grad_(which != "none")
        for i, layer in enumerate(layers):
            for p in layer.parameters():
                p.requires_grad_(i in keep)

    def parameter_depths(self) -> dict[int, int]:
        """Layer i of L at depth ``L - 1 - i``; the rest of the encoder (position embeddings,
        norms below the first layer) at the bottom, depth L; the head and the pooler on top, 0."""
        layers = layer_list(self.encoder)
        n = len(layers)
        depths = {}
        for name, p in self.named_parameters():
            if not name.startswith(("out.", "encoder.pooler")):
                depths[id(p)] = n
        for i, layer in enumerate(layers):
            for p in layer.parameters():
                depths[id(p)] = n - 1 - i
        return depths
