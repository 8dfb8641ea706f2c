"""The base model's cached replies are keyed on every input that decides them: the model,
the eval set, the generation settings and the prompt template."""

from __future__ import annotations

from dataclasses import replace

from training.engine.data.shapes import Record, Turn
from training.engine.evaluate.run import base_key, build_examples
from training.engine.inference.generate import GenerationSettings

GREEDY = GenerationSettings(max_new_tokens=16)


def rows(first_question="Capital of France?", first_answer="Paris") -> list[Record]:
    pairs = [(first_question, first_answer), ("2 + 2?", "4")]
    return [
        Record([Turn("user", q), Turn("assistant", a)], fields={"instruction": q, "output": a})
        for q, a in pairs
    ]


def model_folder(path):
    path.mkdir()
    (path / "model.safetensors").write_bytes(b"weights")
    (path / "config.json").write_text("{}")
    return path


def test_the_same_inputs_give_the_same_key_and_any_change_another(tokenizer, tmp_path):
    model = model_folder(tmp_path / "model")
    examples = build_examples(tokenizer, rows(), "model")

    def key(model=model, examples=examples, generation=GREEDY, loss=True, max_len=256):
        return base_key(model, examples, generation, loss, max_len)

    same = key()
    assert key(examples=build_examples(tokenizer, rows(), "model")) == same
    assert key(generation=replace(GREEDY, batch_size=1)) == same  # rows per batch: no matter
    changed = {
        "another model": key(model=model_folder(tmp_path / "other")),
        "the template": key(examples=build_examples(tokenizer, rows(), "alpaca")),
        "fewer examples": key(examples=examples[:1]),
        "another prompt": key(examples=build_examples(tokenizer, rows("Capital?"), "model")),
        "another expected output (the loss reads it)": key(
            examples=build_examples(tokenizer, rows(first_answer="Lyon"), "model")
        ),
        "max new tokens": key(generation=replace(GREEDY, max_new_tokens=8)),
        "temperature": key(generation=replace(GREEDY, temperature=0.7)),
        "top-p": key(generation=replace(GREEDY, top_p=0.9)),
        "seed": key(generation=replace(GREEDY, seed=1)),
        "no loss": key(loss=False),
        "the loss's max length": key(max_len=128),
    }
    for what, other in changed.items():
        assert other != same, what
    (model / "model.safetensors").write_bytes(b"retrained weights")
    assert key() != same, "the model's files changed"
