"""Model cache: bases stay loaded within a budget; adapters switch on one loaded base."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from training.engine.inference.cache import ModelCache, weight_bytes
from training.engine.inference.chat import encode_prompt
from training.engine.inference.stream import Sampling, TokenStream

pytestmark = pytest.mark.slow

MESSAGES = [{"role": "user", "content": "Name three colours."}]


def _random_adapter(model_dir: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random (non-zero) weights, so it changes the answers."""
    import torch
    from peft import LoraConfig, get_peft_model

    from training.engine.models import store

    torch.manual_seed(seed)
    model, _ = store.load_model_and_tokenizer(model_dir, quantization="none")
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapters(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("adapters")
    return [_random_adapter(model_dir, root / f"a{i}", seed=i) for i in (1, 2)]


def _answer(model: Any, tokenizer: Any) -> str:
    inputs = dict(encode_prompt(tokenizer, MESSAGES))
    return "".join(TokenStream(model, tokenizer, inputs, Sampling(max_new_tokens=10)))


def _fresh(model_dir: Path, adapter: Path | None) -> str:
    from peft import PeftModel

    from training.engine.models import store

    model, tokenizer = store.load_model_and_tokenizer(model_dir, quantization="none")
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    return _answer(model.eval(), tokenizer)


def test_switching_adapters_answers_like_freshly_loaded_ones(model_dir, adapters) -> None:
    cache = ModelCache(budget_bytes=10**12)
    answers = []
    for adapter in [adapters[0], adapters[1], None, adapters[0]]:
        with cache.lease(model_dir, adapter) as (model, tokenizer):
            answers.append(_answer(model, tokenizer))

    assert cache.loads == 1
    assert cache.base(model_dir).loads == 2  # switching back to the first is free
    assert answers[0] == answers[3] == _fresh(model_dir, adapters[0])
    assert answers[1] == _fresh(model_dir, adapters[1])
    assert answers[2] == _fresh(model_dir, None)
    assert len({answers[0], answers[1], answers[2]}) == 3


def test_it_evicts_the_least_recently_used_base_past_the_budget(model_dir, tmp_path) -> None:
    copy = tmp_path / "copy"
    try:
        shutil.copytree(model_dir, copy, copy_function=os.link)
    except OSError:
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(model_dir, copy)
    cache = ModelCache(budget_bytes=0)
    first = cache.base(model_dir)
    size = weight_bytes(first.model)
    cache.budget_bytes = size + size // 2

    cache.base(copy)

    assert cache.loads == 2
    assert (str(model_dir.resolve()), "none") not in cache
    assert (str(copy.resolve()), "none") in cache
    assert cache.used_bytes == size
    cache.budget_bytes = 3 * size
    cache.base(model_dir)
    cache.base(copy)
    assert cache.loads == 3 and cache.used_bytes == 2 * size
