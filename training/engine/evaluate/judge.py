"""The optional LLM-as-judge metric: another model, behind any OpenAI-compatible chat
completions endpoint the operator configures, says whether a reply gives the expected
answer. The prompt it is sent (:data:`JUDGE_PROMPT`) is shown to the user as it is.

Pass/fail, like exact match: the judge answers YES or NO, at temperature 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

JUDGE_PROMPT = (
    "You are grading the reply of a language model against the expected answer.\n\n"
    "Question:\n{prompt}\n\n"
    "Expected answer:\n{expected}\n\n"
    "Model's reply:\n{output}\n\n"
    "Does the model's reply give the expected answer (the same meaning; wording, format "
    "and extra politeness do not matter)? Answer with one word: YES or NO."
)


class JudgeError(RuntimeError):
    """The judge could not be asked or gave no usable verdict; the message says why."""


@dataclass(frozen=True)
class JudgeConfig:
    """Where the judge is: ``url`` is the API base (``…/v1``), ``model`` the model name it
    serves; ``api_key`` is sent as a bearer token when set."""

    url: str
    model: str
    api_key: str = ""
    timeout_s: float = 60.0


def judge_prompt(prompt: str, expected: str, output: str) -> str:
    return JUDGE_PROMPT.format(prompt=prompt, expected=expected, output=output)


def parse_verdict(text: str) -> bool:
    words = text.strip().strip(".!*\"'`").split()
    first = words[0].strip(".,:;!*\"'`").upper() if words else ""
    if first in ("YES", "NO"):
        return first == "YES"
    raise JudgeError(f"the judge answered {text.strip()[:80]!r}, not YES or NO")


def ask(
    config: JudgeConfig,
    prompt: str,
    expected: str,
    output: str,
    session: requests.Session | None = None,
) -> bool:
    """The judge's verdict on one reply: True when it gives the expected answer."""
    endpoint = config.url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    body = {
        "model": config.model,
        "messages": [{"role": "user", "content": judge_prompt(prompt, expected, output)}],
        "temperature": 0,
        "max_tokens": 5,
    }
    try:
        response = (session or requests).post(
            endpoint, json=body, headers=headers, timeout=config.timeout_s
        )
    except requests.RequestException as exc:
        raise JudgeError(f"the judge at {endpoint} could not be reached: {exc}") from exc
    if response.status_code != 200:
        why = "the API key was refused" if response.status_code in (401, 403) else "an error"
        raise JudgeError(
            f"the judge at {endpoint} answered HTTP {response.status_code} ({why}): "
            f"{response.text[:200]}"
        )
    try:
        text = response.json()["choices"][0]["message"]["content"] or ""
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise JudgeError(f"the judge at {endpoint} sent no chat completion") from exc
    return parse_verdict(text)


def judge_all(config: JudgeConfig, items: list[tuple[str, str, str]]) -> list[bool]:
    """Verdicts for (prompt, expected, output) triples, over one connection."""
    with requests.Session() as session:
        return [ask(config, p, e, o, session) for p, e, o in items]
