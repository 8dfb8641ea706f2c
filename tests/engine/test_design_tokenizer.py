"""A design's byte-level BPE tokenizer: trained, saved, loaded by transformers, chat-ready."""

from __future__ import annotations

from transformers import AutoTokenizer

from training.engine.design import tokenizer as design_tokenizer

TEXTS = [
    f"The {animal} walked to the {place} and found a {thing} near the {color} door."
    for animal in ("cat", "dog", "fox", "owl", "bear")
    for place in ("river", "market", "forest", "school")
    for thing in ("stone", "letter", "coin", "map")
    for color in ("red", "blue", "green")
]


def test_it_trains_a_tokenizer_transformers_loads_with_a_chat_template(tmp_path):
    seen: list[float] = []
    trained = design_tokenizer.train_tokenizer(
        TEXTS, 400, tmp_path, total=len(TEXTS), progress=seen.append
    )
    assert trained.get_vocab_size() <= 400
    assert seen[-1] == 1.0
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.eos_token == "<|eos|>" and loaded.pad_token == "<|pad|>"
    text = loaded.apply_chat_template(
        [{"role": "user", "content": "hello"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|bos|><|user|>hello<|end|><|assistant|>"
    # An answer ends with EOS, which a fine-tune learns to write and generation stops at.
    chat = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]
    assert loaded.apply_chat_template(chat, tokenize=False).endswith("hi<|end|><|eos|>")
    ids = loaded("The fox walked to the market.")["input_ids"]
    assert loaded.decode(ids) == "The fox walked to the market."


def test_it_reports_tokens_per_word_and_sample_pieces(tmp_path):
    trained = design_tokenizer.train_tokenizer(TEXTS, 400, tmp_path)
    ratio = design_tokenizer.tokens_per_word(trained, TEXTS)
    assert 0.9 < ratio < 2.0  # common words became single tokens
    pieces = design_tokenizer.sample_tokenization(trained, "The owl found a zebra")
    assert "".join(pieces) == "The owl found a zebra"
    assert len(pieces) > 5  # an unseen word splits into pieces
