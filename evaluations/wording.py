"""Results in words a student reads: "tuned is better on valid JSON: 96% vs 3%, p < 0.001"."""

from __future__ import annotations

from django.utils.translation import gettext as _

from training.engine.evaluate.metrics import PASS


def value(entry: dict, estimate: dict | None) -> str:
    if estimate is None:
        return "-"
    if entry["kind"] == PASS:
        return f"{100 * estimate['mean']:.0f}%"
    if entry["name"] == "length":
        return f"{estimate['mean']:.0f}"
    return f"{estimate['mean']:.3f}"


def interval(entry: dict, estimate: dict | None) -> str:
    if estimate is None:
        return ""
    if entry["kind"] == PASS:
        return f"{100 * estimate['low']:.0f}-{100 * estimate['high']:.0f}%"
    if entry["name"] == "length":
        return f"{estimate['low']:.0f}-{estimate['high']:.0f}"
    return f"{estimate['low']:.3f}-{estimate['high']:.3f}"


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def sentence(entry: dict) -> str:
    test = entry.get("test")
    if test is None:
        return ""
    words = {
        "label": entry["label"],
        "tuned": value(entry, entry["tuned"]),
        "base": value(entry, entry["base"]),
        "p": p_text(test["p_value"]),
    }
    verdict = entry.get("verdict", "same")
    if verdict == "better":
        return _("Tuned is better on %(label)s: %(tuned)s vs %(base)s, %(p)s.") % words
    if verdict == "worse":
        return _("Tuned is worse on %(label)s: %(tuned)s vs %(base)s, %(p)s.") % words
    if verdict in ("higher", "lower"):
        if verdict == "higher":
            return _("Tuned gives a higher %(label)s: %(tuned)s vs %(base)s, %(p)s.") % words
        return _("Tuned gives a lower %(label)s: %(tuned)s vs %(base)s, %(p)s.") % words
    return (
        _(
            "No clear difference on %(label)s: %(tuned)s vs %(base)s, %(p)s; a gap this size "
            "could be chance with this many examples."
        )
        % words
    )


def rows_for_page(summary: dict) -> list[dict]:
    out = []
    for entry in summary.get("metrics", []):
        out.append(
            {
                **entry,
                "base_text": value(entry, entry["base"]),
                "base_ci": interval(entry, entry["base"]),
                "tuned_text": value(entry, entry["tuned"]),
                "tuned_ci": interval(entry, entry["tuned"]),
                "sentence": sentence(entry),
                "significant": bool(entry.get("test") and entry["test"]["significant"]),
            }
        )
    return out
