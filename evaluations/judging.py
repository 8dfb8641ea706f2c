"""The LLM judge the operator configured (settings SLMLAB_JUDGE_*), if any."""

from __future__ import annotations

from django.conf import settings

from training.engine.evaluate.judge import JUDGE_PROMPT, JudgeConfig


def judge_config() -> JudgeConfig | None:
    if not settings.SLMLAB_JUDGE_URL:
        return None
    return JudgeConfig(
        url=settings.SLMLAB_JUDGE_URL,
        model=settings.SLMLAB_JUDGE_MODEL,
        api_key=settings.SLMLAB_JUDGE_API_KEY or "",
    )


def judge_context() -> dict:
    """What the pages show of the judge: its model and the exact prompt it is sent."""
    config = judge_config()
    if config is None:
        return {"judge": None}
    return {"judge": {"model": config.model, "prompt": JUDGE_PROMPT}}
