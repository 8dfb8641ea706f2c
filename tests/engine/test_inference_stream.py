"""Streamed generation: sampling settings checked, stop strings, cancel, lengths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from training.engine.inference.chat import encode_prompt
from training.engine.inference.stream import Sampling, SamplingError, TokenStream, check_fits

MESSAGES = [{"role": "user", "content": "Write a long story about a dragon and a knight."}]


@pytest.mark.parametrize(
    ("values", "param"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 100_000}, "max_new_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": [""]}, "stop"),
        ({"stop": [3]}, "stop"),
    ],
)
def test_it_refuses_sampling_settings_out_of_range(values: dict, param: str) -> None:
    with pytest.raises(SamplingError) as caught:
        Sampling(**values)

    assert caught.value.param == param


def test_it_accepts_one_stop_string_as_a_list_of_one() -> None:
    assert Sampling(stop="###").stop == ("###",)


@pytest.fixture(scope="module")
def loaded(model_dir: Path) -> tuple[Any, Any]:
    from training.engine.models import store

    model, tokenizer = store.load_model_and_tokenizer(model_dir, quantization="none")
    return model.eval(), tokenizer


def _stream(loaded: tuple[Any, Any], **settings: Any) -> TokenStream:
    model, tokenizer = loaded
    cancelled = settings.pop("cancelled", lambda: False)
    inputs = encode_prompt(tokenizer, MESSAGES)
    return TokenStream(model, tokenizer, dict(inputs), Sampling(**settings), cancelled)


@pytest.mark.slow
def test_it_streams_greedy_text_in_chunks_and_stops_at_the_length(loaded) -> None:
    stream = _stream(loaded, max_new_tokens=16)

    chunks = list(stream)

    assert len(chunks) > 1
    assert stream.finish_reason == "length"
    assert stream.completion_tokens == 16
    assert stream.prompt_tokens > 5
    assert "".join(chunks) == stream.text
    assert "".join(chunks) == "".join(_stream(loaded, max_new_tokens=16))


@pytest.mark.slow
def test_it_stops_before_a_stop_string_and_never_shows_it(loaded) -> None:
    full = "".join(_stream(loaded, max_new_tokens=24))
    words = full.split()
    stop = " ".join(words[3:5])

    stream = _stream(loaded, max_new_tokens=24, stop=[stop])
    text = "".join(stream)

    assert text == full[: full.index(stop)]
    assert stop not in text
    assert stream.finish_reason == "stop"
    assert stream.completion_tokens < 24


@pytest.mark.slow
def test_a_cancel_flag_stops_generation_within_a_token(loaded) -> None:
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 4

    stream = _stream(loaded, max_new_tokens=200, cancelled=cancelled)
    list(stream)

    assert stream.finish_reason == "cancelled"
    assert stream.completion_tokens <= 5


@pytest.mark.slow
def test_a_consumer_that_stops_reading_stops_the_model(loaded) -> None:
    stream = _stream(loaded, max_new_tokens=200)
    chunks = iter(stream)
    next(chunks)
    chunks.close()

    assert stream.completion_tokens < 200


@pytest.mark.slow
def test_sampling_with_a_seed_repeats(loaded) -> None:
    settings = {"max_new_tokens": 8, "temperature": 1.0, "top_p": 0.9, "top_k": 40, "seed": 7}
    settings["repetition_penalty"] = 1.2

    assert "".join(_stream(loaded, **settings)) == "".join(_stream(loaded, **settings))


@pytest.mark.slow
def test_it_refuses_more_tokens_than_the_context_holds(loaded) -> None:
    model, _ = loaded
    limit = model.config.max_position_embeddings

    with pytest.raises(SamplingError) as caught:
        check_fits(model, limit - 10, Sampling(max_new_tokens=11))

    assert caught.value.param == "max_tokens"
    check_fits(model, limit - 10, Sampling(max_new_tokens=10))


def test_sampling_settings_can_be_checked_without_torch() -> None:
    import subprocess
    import sys

    script = (
        "import sys; from training.engine.inference.sampling import Sampling; Sampling(top_k=5); "
        "assert not {'torch', 'transformers'} & set(sys.modules), 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
