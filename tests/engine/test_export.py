"""Exports in the engine: merged weights, GGUF files, chat templates and Modelfiles.

Tiny real Llama models with the bundled tokenizer keep these fast; the bundled
SmolLM2 is used where only the real thing proves it (slow tests).
"""

import json

import numpy as np
import pytest

from tests.exports.helpers import write_adapter, write_tiny_llama
from training.engine.export import gguf_writer, llama, merge, pipeline, verify
from training.engine.export.chat_template import chat_pieces, text_prompt_template
from training.engine.export.modelfile import modelfile
from training.engine.models.store import load_tokenizer

needs_llama = pytest.mark.skipif(not llama.available(), reason="llama-cpp-python not installed")


@pytest.fixture(scope="module")
def tiny(bundled_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    base = write_tiny_llama(folder / "base", bundled_model_dir)
    adapter = write_adapter(base, folder / "adapter", scale=0.5)
    return base, adapter


@pytest.fixture(scope="module")
def tokenizer(bundled_model_dir):
    return load_tokenizer(bundled_model_dir)


CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "How are you?"},
    ],
]


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_chat_pieces_render_conversations_exactly_like_the_chat_template(tokenizer, messages):
    pieces = chat_pieces(tokenizer, tokenizer.chat_template)
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert pieces.render(messages) == expected


def test_an_alpaca_run_exports_a_chat_template_that_prompts_as_training_did(tokenizer):
    from training.engine.data.prompts import inference_prompt

    template = text_prompt_template("alpaca")
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name a colour."}],
        chat_template=template,
        tokenize=False,
        add_generation_prompt=True,
    )
    assert rendered == inference_prompt("Name a colour.", "", "alpaca")
    pieces = chat_pieces(tokenizer, template, single_turn=True)
    assert pieces.render([{"role": "user", "content": "Name a colour."}]) == rendered


def test_the_modelfile_names_the_gguf_the_template_and_the_end_of_turn_stop(tokenizer):
    pieces = chat_pieces(tokenizer, tokenizer.chat_template)
    text = modelfile("model.gguf", pieces, [tokenizer.eos_token])
    assert text.startswith("FROM ./model.gguf\n")
    assert 'PARAMETER stop "<|im_end|>"' in text
    assert "<|im_start|>user\n{{ $m.Content }}<|im_end|>\n" in text
    assert "{{- else }}<|im_start|>system\nYou are a helpful AI assistant named SmolLM" in text
    assert text.count('"""') == 2


@pytest.mark.parametrize(
    ("pre", "expected"),
    [
        ({"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}, "gpt-2"),
        (
            {
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Digits", "individual_digits": True},
                    {"type": "ByteLevel", "use_regex": True},
                ],
            },
            "smollm",
        ),
    ],
)
def test_the_pre_tokenizer_is_named_as_llama_cpp_knows_it(pre, expected):
    assert gguf_writer.pre_tokenizer_type({"pre_tokenizer": pre}) == expected


def test_an_unknown_pre_tokenizer_is_refused_rather_than_guessed():
    with pytest.raises(gguf_writer.GgufExportError, match="pre-tokenizer"):
        gguf_writer.pre_tokenizer_type({"pre_tokenizer": {"type": "Whitespace"}})


def test_rotary_reordering_pairs_each_heads_halves():
    rows = np.arange(8).reshape(8, 1)  # two heads of four dimensions
    out = gguf_writer.rotary_to_interleaved(rows, heads=2)
    assert out[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_merged_weights_reload_and_answer_like_the_adapter_on_its_base(tiny, tmp_path):
    base, adapter = tiny
    result = pipeline.export_merged(base, adapter, tmp_path / "merged", "float32")
    assert result["passed"] and len(result["prompts"]) == len(verify.PROMPTS)
    folder = tmp_path / "merged"
    assert (folder / "model.safetensors").is_file()
    assert (folder / "chat_template.jinja").is_file() or "chat_template" in json.loads(
        (folder / "tokenizer_config.json").read_text()
    )
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["eos_token_id"] == 2
    # The merge changed the model: the base alone answers differently.
    from transformers import AutoModelForCausalLM

    alone = AutoModelForCausalLM.from_pretrained(base).eval()
    base_answers = verify.greedy_answers(alone, load_tokenizer(base))
    merged_model, tok = verify.load_merged(folder)
    assert verify.greedy_answers(merged_model, tok).ids != base_answers.ids


@pytest.mark.parametrize(("dtype", "stored"), [("bfloat16", "BF16"), ("float16", "F16")])
def test_a_merged_model_is_saved_in_the_precision_chosen_with_what_it_needs_to_load(
    tiny, tmp_path, dtype, stored
):
    from tests.exports.helpers import safetensors_dtypes
    from training.engine.export.chat_template import text_prompt_template

    base, adapter = tiny
    model, tokenizer = merge.load_adapter_on_base(base, adapter)
    folder = merge.save_merged(merge.merge(model), tokenizer, tmp_path / "m", dtype, "alpaca")
    assert safetensors_dtypes(folder / "model.safetensors") == {stored}
    assert json.loads((folder / "config.json").read_text())["dtype"] == dtype
    assert json.loads((folder / "generation_config.json").read_text())["eos_token_id"] == 2
    # An Alpaca run's export carries the template it trained with, not the model's chat.
    reloaded = load_tokenizer(folder)
    assert reloaded.chat_template == text_prompt_template("alpaca")


def test_a_merge_that_answers_differently_fails_with_the_prompt_and_both_answers(tiny, tmp_path):
    base, adapter = tiny
    model, tokenizer = merge.load_adapter_on_base(base, adapter)
    with model.disable_adapter():
        wrong = verify.greedy_answers(model, tokenizer)  # the base's answers, not the tuned
    merged = merge.save_merged(merge.merge(model), tokenizer, tmp_path / "m", "float32")
    with pytest.raises(verify.VerificationFailed, match="answers differently"):
        verify.verify_merged(wrong, merged, "model", "")


def test_a_half_precision_merge_may_part_from_the_reference_only_at_a_near_tie(tiny, tmp_path):
    # This random tiny model's next-token distributions are flat: saved in fp16 its answers
    # part from the adapter on its base at near ties only; in bf16 (gap noise 0.42) one
    # answer took a token 0.85 logits behind the best, which fails, as it should.
    base, adapter = tiny
    result = pipeline.export_merged(base, adapter, tmp_path / "m", "float16")
    assert result["passed"] and result["near_tie_limit"] >= verify.NEAR_TIE
    assert result["gap_noise"] > 0  # rounding the weights moved the logits
    model, tokenizer = merge.load_adapter_on_base(base, adapter)
    reference = verify.greedy_answers(model, tokenizer)
    for i, row in enumerate(result["prompts"]):
        if row["near_tie_at"] is not None:  # the answers part where the reference hesitated
            assert reference.gaps[i][row["near_tie_at"]] < result["near_tie_limit"]
        else:
            assert row["answer"] == row["reference"]
    # The allowance is for ties only: answers of another model still fail.
    with model.disable_adapter():
        wrong = verify.greedy_answers(model, tokenizer)
    with pytest.raises(verify.VerificationFailed, match="answers differently"):
        verify.verify_merged(
            wrong, tmp_path / "m", "model", "", verify.text_log_probs(merge.merge(model), tokenizer)
        )


@pytest.mark.parametrize("gguf_type", ["f16", "q8_0", "q4_0"])
def test_the_gguf_file_carries_vocabulary_merges_special_tokens_and_chat_template(
    tiny, tmp_path, gguf_type
):
    base, _ = tiny
    path = gguf_writer.write_gguf(base, tmp_path / "m.gguf", gguf_type, "tiny")
    meta = gguf_writer.read_metadata(path)
    assert meta["general.architecture"] == "llama"
    assert meta["tokenizer.ggml.model"] == "gpt2"
    assert meta["tokenizer.ggml.pre"] == "gpt-2"  # the store's tokenizer splits like GPT-2
    assert meta["tokenizer.ggml.tokens"] == 49152
    assert meta["tokenizer.ggml.merges"] > 40_000
    assert meta["tokenizer.ggml.eos_token_id"] == 2
    assert meta["tokenizer.ggml.bos_token_id"] == 1
    assert meta["tokenizer.ggml.padding_token_id"] == 2
    assert meta["tokenizer.ggml.add_bos_token"] is False
    assert "<|im_start|>" in meta["tokenizer.chat_template"]
    assert meta["llama.attention.head_count_kv"] == 2
    wanted = {"f16": "F16", "q8_0": "Q8_0", "q4_0": "Q4_0"}[gguf_type]
    assert wanted in meta["tensor_types"]
    # Token types: the chat markers are control tokens (llama.cpp parses them as one
    # token each only then), ordinary tokens normal.
    import gguf

    types = gguf.GGUFReader(path).fields["tokenizer.ggml.token_type"]
    type_of = [int(types.parts[i][0]) for i in types.data]
    assert type_of[1] == type_of[2] == gguf.TokenType.CONTROL  # <|im_start|>, <|im_end|>
    assert type_of[1000] == gguf.TokenType.NORMAL


@needs_llama
def test_llama_cpp_computes_the_same_next_token_distribution_as_transformers(tiny, tmp_path):
    # Proves the tensor names, the query/key reordering and the hyperparameters: a
    # mistake in any of them changes every logit.
    base, _ = tiny
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base).eval()
    tokenizer = load_tokenizer(base)
    ids, log_probs = verify.text_log_probs(model, tokenizer)
    path = gguf_writer.write_gguf(base, tmp_path / "m.gguf", "f16", "tiny")
    gguf = llama.GgufModel(path)
    try:
        assert gguf.tokenize(verify.FIXED_TEXT) == ids
        kl, agreement = verify.kl_and_agreement(log_probs, gguf.logits(ids))
    finally:
        gguf.close()
    assert agreement > 0.95
    assert kl < 0.01


@needs_llama
def test_llama_cpp_reads_the_chat_markers_as_one_token_each_only_when_told(
    tiny, tokenizer, tmp_path
):
    # The trap of issue 16: tokenized as plain text, "<|im_start|>" becomes several
    # tokens and the model answers a prompt it never saw. The verification tokenizes with
    # special tokens parsed and requires the ids of the model's own tokenizer.
    base, _ = tiny
    path = gguf_writer.write_gguf(base, tmp_path / "m.gguf", "f16", "tiny")
    text = verify.prompt_text(tokenizer, verify.PROMPTS[0], "model", "")
    ids = verify.prompt_ids(tokenizer, verify.PROMPTS[0], "model", "")
    gguf = llama.GgufModel(path)
    try:
        assert gguf.tokenize(text) == ids
        plain = gguf.llm.tokenize(text.encode(), add_bos=False, special=False)
    finally:
        gguf.close()
    assert len(plain) > len(ids) and tokenizer.convert_tokens_to_ids("<|im_start|>") not in plain


@needs_llama
def test_q4_k_m_is_made_by_llama_cpps_quantizer_and_keeps_the_metadata(tiny, tmp_path):
    import gguf

    base, _ = tiny
    f16 = gguf_writer.write_gguf(base, tmp_path / "f16.gguf", "f16", "tiny")
    path = llama.quantize(f16, tmp_path / "q4_k_m.gguf", "q4_k_m")
    meta = gguf_writer.read_metadata(path)
    assert meta["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q4_K_M
    assert "<|im_start|>" in meta["tokenizer.chat_template"]
    assert meta["tokenizer.ggml.merges"] > 40_000
    assert path.stat().st_size < f16.stat().st_size
    model = llama.GgufModel(path)
    try:
        assert np.isfinite(model.logits(model.tokenize("Hello there"))).all()
    finally:
        model.close()


@needs_llama
@pytest.mark.slow
def test_smollm2_gguf_answers_like_the_merged_model_and_stops_at_end_of_turn(
    bundled_model_dir, tmp_path
):
    adapter = write_adapter(bundled_model_dir, tmp_path / "adapter", scale=0.02)
    result = pipeline.export_gguf(bundled_model_dir, adapter, tmp_path / "out", "q8_0", "smol-q8_0")
    assert result["passed"] and result["tokenization_equal"]
    assert all(p["equal"] for p in result["prompts"])
    assert result["chat_stopped_at_eos"]
    assert result["token_agreement"] > 0.9
    text = (tmp_path / "out" / "Modelfile").read_text()
    assert text.startswith("FROM ./smol-q8_0.gguf")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Modelfile", "smol-q8_0.gguf"]


def test_a_difference_counts_only_at_a_near_tie_of_the_reference_and_only_when_allowed():
    n = len(verify.PROMPTS)
    reference = verify.Answers(
        ids=[[5, 6, 7, 2]] * n,
        texts=["ref"] * n,
        runner_up=[[9, 8, 3, 1]] * n,
        gaps=[[2.0, 0.05, 3.0, 4.0]] * n,
    )
    runner_up_at_tie = verify.Answers(ids=[[5, 8, 1, 1]] * n, texts=["got"] * n)
    other_at_tie = verify.Answers(ids=[[5, 4, 1, 1]] * n, texts=["got"] * n)
    clear_difference = verify.Answers(ids=[[9, 6, 7, 2]] * n, texts=["got"] * n)
    rows = verify.compare_answers(reference, runner_up_at_tie, None, near_ties=True)
    assert all(r["equal"] and r["near_tie_at"] == 1 for r in rows)
    assert not any(r["equal"] for r in verify.compare_answers(reference, runner_up_at_tie, None))
    assert not any(
        r["equal"] for r in verify.compare_answers(reference, other_at_tie, 16, near_ties=True)
    )
    assert not any(
        r["equal"] for r in verify.compare_answers(reference, clear_difference, 16, near_ties=True)
    )
    # The limit widens with a quantized file's own measured gap noise: a gap of 2.0 where
    # the candidate took the runner-up (9) is a near-tie under a limit of 2.5.
    wide = verify.compare_answers(reference, clear_difference, 16, True, tie_limit=2.5)
    assert all(r["equal"] and r["near_tie_at"] == 0 for r in wide)
    other = verify.compare_answers(reference, other_at_tie, 16, True, tie_limit=2.5)
    assert not any(r["equal"] for r in other)


def test_the_gap_noise_is_how_much_a_file_moves_the_references_two_best_gaps():
    reference = np.log(np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]]))
    # Position 0: best 0, runner-up 1, gap ln 2; the candidate's logits make it 1.0.
    # Position 1: best 2, runner-up 1, gap ln 3.5; the candidate keeps it exactly.
    candidate = np.array([[1.0, 0.0, -5.0], [0.0, 5.0, 5.0 + np.log(3.5)]])
    expected = abs(1.0 - np.log(2.0))
    noise = verify.gap_noise(reference, candidate)
    assert noise == pytest.approx(np.quantile([expected, 0.0], verify.NOISE_QUANTILE))
    assert verify.gap_noise(reference, reference) == pytest.approx(0.0)
