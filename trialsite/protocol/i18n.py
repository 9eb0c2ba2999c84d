"""Participant-facing text in the participant's language: negotiation and lookup.

A text in the protocol is plain (in the protocol's `language`) or a mapping `{en: "...", es: "..."}`;
instruments carry a `translations:` block. The language is chosen from `?lang=` first, then the
Accept-Language header (by quality), matching a full tag (`es-MX`) or its primary subtag (`es`);
anything else gets the protocol's default.
"""

from __future__ import annotations


def _candidates(lang: str | None, accept_language: str | None) -> list[str]:
    out: list[str] = []
    if lang:
        out.append(lang.strip())
    weighted = []
    for n, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and tag != "*" and q > 0:
            weighted.append((-q, n, tag.strip()))
    out += [tag for _, _, tag in sorted(weighted)]
    return out


def negotiate(*, available, default: str, lang: str | None = None, accept_language: str | None = None) -> str:
    """The language to answer in: the first wanted one that `available` has, else `default`."""
    by_lower = {a.lower(): a for a in [default, *available]}
    for tag in _candidates(lang, accept_language):
        tag = tag.lower()[:35]
        for option in (tag, tag.split("-")[0]):
            if option in by_lower:
                return by_lower[option]
    return default


def text_languages(text) -> list[str]:
    return list(text) if isinstance(text, dict) else []


def localized(text, language: str, default: str):
    """A plain or per-language text in `language`, else in `default`, else its first language."""
    if not isinstance(text, dict):
        return text
    for option in (language, language.split("-")[0], default):
        if text.get(option):
            return text[option]
    return next(iter(text.values()), "")
