"""Train a byte-level BPE tokenizer for a design, saved as a transformers tokenizer folder.

Uses the ``tokenizers`` library (no torch). The folder holds ``tokenizer.json`` and a
``tokenizer_config.json`` naming ``PreTrainedTokenizerFast``, the special tokens and a
chat template, so ``AutoTokenizer.from_pretrained`` loads it and a pretrained model can
later be fine-tuned on chat data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
USER, ASSISTANT, SYSTEM, END = "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, SYSTEM, USER, ASSISTANT, END]

# Each message is its role token, the text and <|end|>; an answer also ends with the
# end-of-sequence token, so a model fine-tuned on chats learns to write it and stops
# there (generation, the Playground and llama.cpp stop at EOS); generation continues
# after <|assistant|>. Jinja, as transformers renders chat templates.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


@dataclass(frozen=True)
class TokenizerStats:
    vocab_size: int
    tokens_per_word: float


def _counted(texts: Iterable[str], total: int, progress: Callable[[float], None] | None):
    for index, text in enumerate(texts, start=1):
        yield text
        if progress and total and index % 200 == 0:
            progress(min(index / total, 1.0))


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    out_dir: Path | str,
    *,
    total: int = 0,
    context_length: int = 2048,
    progress: Callable[[float], None] | None = None,
) -> Tokenizer:
    """Train on ``texts`` (``total`` of them, for progress) and save to ``out_dir``."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_counted(texts, total, progress), trainer, length=total or None)
    save(tokenizer, out_dir, context_length)
    if progress:
        progress(1.0)
    return tokenizer


def save(tokenizer: Tokenizer, out_dir: Path | str, context_length: int) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "additional_special_tokens": [SYSTEM, USER, ASSISTANT, END],
        "model_max_length": context_length,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


def load(folder: Path | str) -> Tokenizer:
    return Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))


def tokens_per_word(tokenizer: Tokenizer, texts: Iterable[str]) -> float:
    """Tokens the tokenizer makes per whitespace-separated word of ``texts``."""
    tokens = words = 0
    for text in texts:
        words += len(text.split())
        tokens += len(tokenizer.encode(text, add_special_tokens=False).ids)
    return tokens / words if words else 0.0


def sample_tokenization(tokenizer: Tokenizer, sentence: str) -> list[str]:
    """The pieces ``sentence`` becomes, decoded to readable text each."""
    ids = tokenizer.encode(sentence, add_special_tokens=False).ids
    return [tokenizer.decode([i]) for i in ids]


def stats(tokenizer: Tokenizer, texts: Iterator[str] | list[str]) -> TokenizerStats:
    return TokenizerStats(tokenizer.get_vocab_size(), tokens_per_word(tokenizer, texts))
