"""Every export is checked by loading it back and comparing answers before it is offered.

- Merged weights: reloaded with transformers (computed in fp32), their greedy answers to
  :data:`PROMPTS` must equal the adapter-on-base answers token for token.
- GGUF in llama.cpp: the prompts must tokenize to the same ids as with the model's
  tokenizer; for F16 and Q8_0 the greedy answers must match the merged model's for the
  first :data:`MATCH_TOKENS` tokens; for every type the agreement of next-token argmax
  and the mean KL divergence of the next-token distributions on :data:`FIXED_TEXT` are
  reported (Q4 types pass on those figures instead of on equality); and a chat
  completion rendered with only the template stored in the GGUF must stop at the
  model's end-of-turn token.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.engine.data.prompts import inference_prompt
from training.engine.inference.chat import encode_prompt

PROMPTS = (
    "What is the capital of France?",
    "Give me three tips for staying healthy.",
    "Translate 'good morning' into Spanish.",
    "Write a haiku about the sea.",
    "What is 12 plus 30?",
)
FIXED_TEXT = (
    "The history of the printing press begins in the fifteenth century, when Johannes "
    "Gutenberg combined movable metal type, oil-based ink and a wooden screw press. Books "
    "that had taken scribes months to copy could now be produced in days, and within fifty "
    "years printing shops had opened in more than two hundred European cities. Cheaper books "
    "spread literacy, helped standardize languages and carried new scientific ideas quickly "
    "from one country to the next."
)
ANSWER_TOKENS = 32
MATCH_TOKENS = 16
CHAT_PROMPT = "Say hello in one short sentence."
CHAT_MAX_TOKENS = 96
# A quantized model whose next-token argmax agrees less often than this with the merged
# model, or whose distributions are further apart, answers like a different model.
MIN_Q4_AGREEMENT = 0.6
MAX_Q4_KL = 0.5


class VerificationFailed(RuntimeError):
    """The export does not answer like the run's model; the message says how, and
    ``report`` holds the figures measured on the way."""

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


# Where the reference's two best next tokens are this close (in logits), rounding alone
# may pick either: a GGUF file that takes the runner-up there has not gone wrong, and its
# answer cannot be compared further. Measured on SmolLM2: the Q8_0 file took "," for "."
# where the merged model's gap was 0.057. (Merged safetensors saved in fp32 need no such
# allowance; saved in bf16 or fp16 they get the same one, see verify_merged.)
NEAR_TIE = 0.15
# A quantized file moves every gap a little: a tie is also "near" within the gap change
# this file itself shows on the fixed text (this quantile of it over positions). Measured
# on SmolLM2 Q8_0: the merged model's gap of 0.1516 at "What is the capital of France?"
# flipped, within the file's own noise, while agreement was 95% and KL 0.005.
NOISE_QUANTILE = 0.95
# How many of the reference's best next tokens are kept per step for the near-tie rule.
CLOSE_TOKENS = 8


@dataclass
class Answers:
    """Greedy answers (token ids, then text) to :data:`PROMPTS`; for the reference, at
    each step the runner-up token and the gap between the two best logits."""

    ids: list[list[int]]
    texts: list[str]
    runner_up: list[list[int]] = field(default_factory=list)
    gaps: list[list[float]] = field(default_factory=list)
    # At each step, the best few tokens and how far (logits) each is behind the best.
    behind: list[list[dict[int, float]]] = field(default_factory=list)


def prompt_text(tokenizer: Any, prompt: str, template: str, custom: str) -> str:
    """The text the model is given for ``prompt`` (as chat renders it, before tokens)."""
    messages = [{"role": "user", "content": prompt}]
    if template == "model":
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return inference_prompt(prompt, "", template, custom)


def prompt_ids(tokenizer: Any, prompt: str, template: str, custom: str) -> list[int]:
    encoded = encode_prompt(tokenizer, [{"role": "user", "content": prompt}], template, custom)
    return encoded["input_ids"][0].tolist()


def _strip_eos(ids: list[int], eos: int | None) -> list[int]:
    return ids[:-1] if ids and ids[-1] == eos else ids


@torch.inference_mode()
def greedy_answers(
    model: Any, tokenizer: Any, template: str = "model", custom: str = ""
) -> Answers:
    ids, texts, runner_up, gaps, behind = [], [], [], [], []
    for prompt in PROMPTS:
        inputs = prompt_ids(tokenizer, prompt, template, custom)
        tensor = torch.tensor([inputs], device=model.device)
        out = model.generate(
            input_ids=tensor,
            attention_mask=torch.ones_like(tensor),
            max_new_tokens=ANSWER_TOKENS,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
        answer = out.sequences[0, len(inputs) :].tolist()
        best = [
            torch.topk(step[0].float(), min(CLOSE_TOKENS, step.shape[-1])) for step in out.logits
        ]
        ids.append(answer)
        texts.append(tokenizer.decode(_strip_eos(answer, tokenizer.eos_token_id)).strip())
        runner_up.append([int(top.indices[1]) for top in best])
        gaps.append([float(top.values[0] - top.values[1]) for top in best])
        behind.append(
            [
                {
                    int(t): float(top.values[0] - v)
                    for t, v in zip(top.indices, top.values, strict=True)
                }
                for top in best
            ]
        )
    return Answers(ids, texts, runner_up, gaps, behind)


@torch.inference_mode()
def text_log_probs(model: Any, tokenizer: Any) -> tuple[list[int], np.ndarray]:
    """(token ids of :data:`FIXED_TEXT`, log-probabilities of the next token after each)."""
    ids = tokenizer(FIXED_TEXT, add_special_tokens=False)["input_ids"]
    # Learned positions (GPT-2) end at the context: a small tokenizer's text can be longer.
    ids = ids[: getattr(model.config, "max_position_embeddings", None) or len(ids)]
    logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0].float()
    return ids, torch.log_softmax(logits, dim=-1).cpu().numpy()


def load_merged(model_dir: Path) -> tuple[Any, Any]:
    """A merged export reloaded with transformers from its files, its weights upcast to
    fp32 (exactly: every bf16 and fp16 value is an fp32 value) and computed in fp32 like
    the reference. The check is of the file, not of the CPU's half-precision arithmetic:
    measured on the bundled SmolLM2 with a small random adapter, a bf16 merge computed in
    bf16 on a 2-core CPU answered 3 of the 5 prompts differently from the adapter on its
    base (first differences where the reference's two best tokens were 0.15, 0.10 and
    0.09 logits apart), the same file computed in fp32 answered all 5 token for token."""
    from transformers import AutoModelForCausalLM

    from training.engine.models.store import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, device_map={"": "cpu"}, use_safetensors=True
    )
    return model.eval(), tokenizer


def compare_answers(
    reference: Answers,
    candidate: Answers,
    tokens: int | None,
    near_ties: bool = False,
    tie_limit: float = NEAR_TIE,
) -> list[dict]:
    """Per prompt: both answers and how many leading tokens agree (None = all of them).

    ``near_ties``: a first difference where the candidate took a token the reference
    had within ``tie_limit`` of its best (the runner-up, or one of its best few when it
    kept them) counts as agreeing up to there.
    """
    rows = []
    for i, (prompt, ref, got) in enumerate(zip(PROMPTS, reference.ids, candidate.ids, strict=True)):
        agree = 0
        for a, b in zip(ref, got, strict=False):
            if a != b:
                break
            agree += 1
        wanted = len(ref) if tokens is None else min(tokens, len(ref))
        tie = near_ties and agree < min(len(ref), len(got)) and _close(reference, i, agree, got)
        if tie and reference.behind:
            tie = reference.behind[i][agree][got[agree]] < tie_limit
        elif tie:
            tie = reference.gaps[i][agree] < tie_limit
        rows.append(
            {
                "prompt": prompt,
                "reference": reference.texts[i],
                "answer": candidate.texts[i],
                "agreeing_tokens": agree,
                "required_tokens": wanted,
                "near_tie_at": agree if tie else None,
                "equal": tie or (agree >= wanted and (tokens is not None or len(ref) == len(got))),
            }
        )
    return rows


def _close(reference: Answers, prompt: int, step: int, got: list[int]) -> bool:
    """Whether the reference kept the candidate's token at ``step`` among its best."""
    if reference.behind:
        return got[step] in reference.behind[prompt][step]
    return reference.runner_up[prompt][step] == got[step]


def verify_merged(
    reference: Answers,
    merged_dir: Path,
    template: str,
    custom: str,
    reference_text: tuple[list[int], np.ndarray] | None = None,
) -> dict:
    """Reload ``merged_dir`` and require its answers to equal ``reference`` token for token.

    Saved in fp32 the merge must be exact. Saved in bf16 or fp16 (``reference_text``: the
    reference's log-probabilities on the fixed text), rounding the weights moves every
    logit a little, so a first difference is allowed only at a near tie the GGUF check
    would also allow: the reference's two best tokens closer than ``NEAR_TIE`` or than
    the saved weights' own measured gap noise, and the merged model took the runner-up.
    (Measured: a bf16 merge of SmolLM2 answered all 5 prompts exactly; a random tiny
    model's bf16 merge flipped ties of under 0.24 logits.)"""
    model, tokenizer = load_merged(merged_dir)
    answers = greedy_answers(model, tokenizer, template, custom)
    result: dict = {"kind": "merged"}
    if reference_text is None:
        rows = compare_answers(reference, answers, None)
    else:
        ids, ref_log_probs = reference_text
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids])).logits[0].float().numpy()
        noise = gap_noise(ref_log_probs, logits)
        limit = max(NEAR_TIE, noise)
        result |= {"gap_noise": noise, "near_tie_limit": limit}
        rows = compare_answers(reference, answers, None, near_ties=True, tie_limit=limit)
    result |= {"prompts": rows, "passed": all(r["equal"] for r in rows)}
    if not result["passed"]:
        bad = next(r for r in rows if not r["equal"])
        raise VerificationFailed(
            f"the merged model answers differently from the adapter on its base: asked "
            f"{bad['prompt']!r} it says {bad['answer']!r} instead of {bad['reference']!r}",
            result,
        )
    return result


@dataclass
class GgufReport:
    gguf_type: str
    tokenization_equal: bool
    prompts: list[dict] = field(default_factory=list)
    token_agreement: float = 0.0
    mean_kl: float = 0.0
    chat_answer: str = ""
    chat_stopped_at_eos: bool = False
    chat_template_stored: bool = False
    chat_stop_required: bool = True
    gap_noise: float = 0.0
    near_tie_limit: float = NEAR_TIE
    passed: bool = False

    def as_dict(self) -> dict:
        return {"kind": "gguf", **asdict(self)}


def kl_and_agreement(reference_log_probs: np.ndarray, logits: np.ndarray) -> tuple[float, float]:
    """(mean KL(reference ‖ candidate) over positions, share of equal argmax)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_q = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    p = np.exp(reference_log_probs)
    kl = (p * (reference_log_probs - log_q)).sum(axis=-1)
    agree = (reference_log_probs.argmax(-1) == logits.argmax(-1)).mean()
    return float(kl.mean()), float(agree)


def gap_noise(reference_log_probs: np.ndarray, logits: np.ndarray) -> float:
    """How much the candidate moves the gap between the reference's two best next tokens:
    the :data:`NOISE_QUANTILE` quantile over positions of its absolute change (logits)."""
    top2 = np.argsort(reference_log_probs, axis=-1)[:, -2:]
    rows = np.arange(len(top2))
    ref_gap = reference_log_probs[rows, top2[:, 1]] - reference_log_probs[rows, top2[:, 0]]
    got_gap = logits[rows, top2[:, 1]] - logits[rows, top2[:, 0]]
    return float(np.quantile(np.abs(got_gap - ref_gap), NOISE_QUANTILE))


def render_stored_template(metadata: dict[str, str], messages: list[dict[str, str]]) -> str:
    """Render the chat template stored in the GGUF (and nothing else) for ``messages``."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    source = metadata.get("tokenizer.chat_template")
    if not source:
        raise VerificationFailed("the GGUF file stores no chat template")
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    return env.from_string(source).render(
        messages=messages, add_generation_prompt=True, bos_token="", eos_token=""
    )


def _raise(message: str) -> None:
    raise VerificationFailed(f"the stored chat template refused the conversation: {message}")


def verify_gguf(
    gguf_path: Path,
    gguf_type: str,
    reference: Answers,
    reference_text: tuple[list[int], np.ndarray],
    tokenizer: Any,
    template: str,
    custom: str,
    chat_must_stop: bool = True,
) -> dict:
    """Load the GGUF in llama.cpp and compare it with the merged model (see module doc).
    ``chat_must_stop`` False: the chat's stop at the end-of-turn token is reported, not
    required (a pretrained model that never saw a chat)."""
    from training.engine.export.llama import GgufModel

    gguf = GgufModel(gguf_path)
    try:
        report = GgufReport(gguf_type=gguf_type, tokenization_equal=True)
        answers_ids, answers_texts = [], []
        for prompt in PROMPTS:
            hf_ids = prompt_ids(tokenizer, prompt, template, custom)
            if gguf.tokenize(prompt_text(tokenizer, prompt, template, custom)) != hf_ids:
                report.tokenization_equal = False
            answer = gguf.greedy(hf_ids, ANSWER_TOKENS)
            answers_ids.append(answer)
            answers_texts.append(gguf.detokenize(_strip_eos(answer, gguf.eos)).strip())
        exact = gguf_type in ("f16", "q8_0")
        ids, ref_log_probs = reference_text
        logits = gguf.logits(ids)
        report.mean_kl, report.token_agreement = kl_and_agreement(ref_log_probs, logits)
        report.gap_noise = gap_noise(ref_log_probs, logits)
        report.near_tie_limit = max(NEAR_TIE, report.gap_noise)
        report.prompts = compare_answers(
            reference,
            Answers(answers_ids, answers_texts),
            MATCH_TOKENS,
            near_ties=True,
            tie_limit=report.near_tie_limit,
        )
        metadata = gguf.metadata
        report.chat_template_stored = bool(metadata.get("tokenizer.chat_template"))
        chat_prompt = render_stored_template(metadata, [{"role": "user", "content": CHAT_PROMPT}])
        chat_ids = gguf.tokenize(chat_prompt)
        arch = metadata.get("general.architecture", "llama")
        room = int(metadata.get(f"{arch}.context_length", CHAT_MAX_TOKENS * 2)) - len(chat_ids)
        chat = gguf.greedy(chat_ids, max(1, min(CHAT_MAX_TOKENS, room)))
        report.chat_stopped_at_eos = bool(chat) and chat[-1] == gguf.eos
        report.chat_answer = gguf.detokenize(_strip_eos(chat, gguf.eos)).strip()
    finally:
        gguf.close()
    problems = []
    if not report.tokenization_equal:
        problems.append("llama.cpp tokenizes the prompts differently from the model's tokenizer")
    if exact and not all(r["equal"] for r in report.prompts):
        bad = next(r for r in report.prompts if not r["equal"])
        problems.append(
            f"asked {bad['prompt']!r} it answers {bad['answer']!r} instead of "
            f"{bad['reference']!r} (first {bad['agreeing_tokens']} tokens agree, "
            f"{bad['required_tokens']} required)"
        )
    if not exact and (report.token_agreement < MIN_Q4_AGREEMENT or report.mean_kl > MAX_Q4_KL):
        problems.append(
            f"its next tokens agree with the merged model's {report.token_agreement:.0%} of "
            f"the time (mean KL {report.mean_kl:.3f}); at least {MIN_Q4_AGREEMENT:.0%} and "
            f"at most {MAX_Q4_KL} are required"
        )
    report.chat_stop_required = chat_must_stop
    if chat_must_stop and not report.chat_stopped_at_eos:
        problems.append(
            f"a chat with the stored template did not stop at the end-of-turn token within "
            f"{CHAT_MAX_TOKENS} tokens"
        )
    report.passed = not problems
    if problems:
        raise VerificationFailed(
            "the GGUF file fails verification: " + "; ".join(problems), report.as_dict()
        )
    return report.as_dict()
