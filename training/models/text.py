"""The description encoder of the two-stage FashionGAN (after Zhu et al., ICCV 2017): a 2-layer
recurrent net over a sentence's tokens whose last hidden state d (100 units, as the study) is
the condition of both GANs; one linear head per attribute column trains it to keep what the
description says (the study's four heads: gender, sleeve, colour, category; ours are the
catalogue's label columns). `bidirectional` splits the 100 units over both directions and
d is both last states; off by default, as the study."""

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


class DescriptionEncoder(nn.Module):
    def __init__(self, vocab_size: int, heads: dict[str, int], hidden: int = 100,
                 layers: int = 2, embedding: int = 32, cell: str = "gru",
                 dropout: float = 0.0, bidirectional: bool = False):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell {cell!r}: one of {', '.join(CELLS)}")
        self.config = {"vocab_size": vocab_size, "heads": dict(heads), "hidden": hidden,
                       "layers": layers, "embedding": embedding, "cell": cell,
                       "dropout": dropout, "bidirectional": bidirectional}
        self.embed = nn.Embedding(vocab_size, embedding, padding_idx=0)
        self.rnn = CELLS[cell](embedding, hidden // (2 if bidirectional else 1),
                               num_layers=layers, batch_first=True,
                               dropout=dropout if layers > 1 else 0.0,
                               bidirectional=bidirectional)
        self.heads = nn.ModuleDict({c: nn.Linear(hidden, n) for c, n in heads.items()})

    @property
    def hidden(self) -> int:
        return self.config["hidden"]

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """d (N, hidden): the top layer's hidden state after each sentence's last real token
        (packed, so padding never reaches the state). An empty sentence reads one <pad>."""
        lengths = torch.as_tensor(lengths).to("cpu", torch.int64).clamp(min=1)
        packed = pack_padded_sequence(self.embed(tokens.long()), lengths, batch_first=True,
                                      enforce_sorted=False)
        _, state = self.rnn(packed)
        h = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
        if self.config["bidirectional"]:
            return torch.cat([h[-2], h[-1]], 1)
        return h[-1]

    def classify(self, d: torch.Tensor) -> dict[str, torch.Tensor]:
        return {c: head(d) for c, head in self.heads.items()}

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per attribute column."""
        return self.classify(self.encode(tokens, lengths))
