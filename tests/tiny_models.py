"""Tiny random models and data shared by the tests and by tests/ddp_train_script.py."""

from pathlib import Path

import torch
from torch.utils.data import Dataset
from transformers import BertConfig, BertModel, BertTokenizer, TrainerCallback

from sensimix_hf import SensiMixConfig


# A (2+2) SensiMix BERT small enough to train in seconds; 37 is deliberately not a multiple of 8 bits.
TINY_SENSIMIX_FIELDS = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=4,
    num_8bit_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    num_labels=2,
)


def tiny_sensimix_config(**overrides) -> SensiMixConfig:
    """Return the tiny (2+2) SensiMix config with `overrides` applied."""
    return SensiMixConfig(**{**TINY_SENSIMIX_FIELDS, **overrides})


def tiny_vocabulary(size: int = 99) -> list[str]:
    """Return a WordPiece vocabulary of `size` tokens that covers short English movie reviews."""
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = list("abcdefghijklmnopqrstuvwxyz")
    words = "the a and of to is it in that this movie film good bad great not , . ! ' s".split()
    words += "fun dull best worst love boring funny story but with as its an for one so too all".split()
    vocabulary = list(dict.fromkeys(special + letters + ["##" + letter for letter in letters] + words))
    vocabulary += [f"[unused{index}]" for index in range(size - len(vocabulary))]
    return vocabulary[:size]


def save_tiny_bert(folder: Path, num_hidden_layers: int = 4) -> Path:
    """Save a random BERT (hidden 32, vocabulary 99) and a WordPiece tokenizer over the same vocabulary."""
    vocabulary = tiny_vocabulary()
    tokenizer = BertTokenizer(vocab={token: index for index, token in enumerate(vocabulary)}, model_max_length=128)
    config = BertConfig(
        vocab_size=len(vocabulary),
        hidden_size=32,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class RandomTokenDataset(Dataset):
    """Random token ids whose label is the parity of the first token, so that a model can learn it."""

    def __init__(self, num_examples: int, sequence_length: int = 8, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(1, 99, (num_examples, sequence_length), generator=generator)
        self.labels = self.input_ids[:, 0] % 2

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids[index],
            "attention_mask": torch.ones_like(self.input_ids[index]),
            "labels": self.labels[index],
        }


class StageRecorder(TrainerCallback):
    """Record the 1-bit FFN layers after every optimizer step. It must come after SensiMixCallback."""

    def __init__(self):
        self.binary_layers_per_step: list[list[int]] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.binary_layers_per_step.append(model.binary_ffn_layers)
