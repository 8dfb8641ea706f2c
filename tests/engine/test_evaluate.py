import math

import pytest
import torch

from tests.engine.helpers import read_alpaca, tokenize_rows
from training.engine.evaluate.loss import evaluation_loss


@pytest.fixture(scope="module")
def model_and_tokenizer(model_dir):
    from training.engine.models.store import load_model_and_tokenizer

    return load_model_and_tokenizer(model_dir, quantization="none", device="cpu")


@pytest.fixture(scope="module")
def examples(model_and_tokenizer, sample_dataset):
    _, tokenizer = model_and_tokenizer
    rows = read_alpaca(sample_dataset)[:6]
    return tokenize_rows(tokenizer, rows, 96)[0]


def reference_loss(model, examples) -> float:
    """Transformers' own shifted cross-entropy, one example at a time, token-weighted."""
    total = tokens = 0
    with torch.no_grad():
        for e in examples:
            labels = torch.tensor([e["labels"]])
            n = int((labels[:, 1:] != -100).sum())
            loss = model(input_ids=torch.tensor([e["input_ids"]]), labels=labels).loss
            total += float(loss) * n
            tokens += n
    return total / tokens


def test_it_is_the_token_weighted_loss_on_the_real_model(model_and_tokenizer, examples):
    model, tokenizer = model_and_tokenizer
    model.train()
    result = evaluation_loss(model, examples, tokenizer.pad_token_id, batch_size=4)
    assert model.training  # restored
    model.eval()
    assert result.loss == pytest.approx(reference_loss(model, examples), rel=1e-4)
    assert result.tokens == sum(sum(1 for x in e["labels"][1:] if x != -100) for e in examples)
    assert result.perplexity == pytest.approx(math.exp(result.loss))
    # Batching and padding change nothing.
    one_by_one = evaluation_loss(model, examples, tokenizer.pad_token_id, batch_size=1)
    assert one_by_one.loss == pytest.approx(result.loss, rel=1e-4)
    assert not any(p.grad is not None for p in model.parameters())


def test_it_refuses_examples_with_nothing_to_score(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(ValueError, match="no validation examples"):
        evaluation_loss(model, [], tokenizer.pad_token_id)
    masked = [{"input_ids": [1, 2, 3], "labels": [-100, -100, -100]}]
    with pytest.raises(ValueError, match="no trained token"):
        evaluation_loss(model, masked, tokenizer.pad_token_id)
