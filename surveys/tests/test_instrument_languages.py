"""Instrument texts per language: ?lang= and Accept-Language, the default when a language is not provided,
and the protocol format's `translations:` block validated like everything else."""

from __future__ import annotations

import pytest
import yaml

from trialsite.protocol.i18n import negotiate
from trialsite.protocol.schema import Protocol

pytestmark = pytest.mark.django_db


def test_spanish_items_options_and_title_when_asked(phone):
    body = phone.get("/api/v1/instruments/blinding-guess?lang=es").json()
    assert body["language"] == "es" and body["version"] == 2
    assert body["title"] == "¿Qué cápsulas crees que estás tomando?"
    guess = body["items"][0]
    assert guess["text"] == "¿Qué crees que has estado tomando?"
    assert [o["label"] for o in guess["options"]] == ["Activa (psilocibina)", "Placebo", "No lo sé"]
    assert [o["value"] for o in guess["options"]] == ["active", "placebo", "dont_know"]  # values never translated


def test_accept_language_picks_spanish_and_the_response_says_so(phone):
    r = phone.get("/api/v1/instruments/daily-mood", HTTP_ACCEPT_LANGUAGE="es-ES,es;q=0.8,en;q=0.5")
    assert r.status_code == 200 and r.json()["language"] == "es" and r["Content-Language"] == "es"
    assert r.json()["items"][4]["text"] == "¿Tomaste hoy una dosis del estudio?"
    assert "Accept-Language" in r["Vary"]
    # ?lang= wins over the header.
    assert phone.get("/api/v1/instruments/daily-mood?lang=en", HTTP_ACCEPT_LANGUAGE="es").json()["language"] == "en"


def test_validated_instruments_stay_in_their_language(phone):
    body = phone.get("/api/v1/instruments/phq9?lang=es").json()
    assert body["language"] == "en" and body["title"] == "PHQ-9"
    assert body["items"][0]["options"][3] == {"value": 3, "label": "Nearly every day"}


def test_default_is_english_without_a_preference(phone):
    body = phone.get("/api/v1/instruments/daily-mood").json()
    assert body["language"] == "en" and body["title"] == "Evening mood check"


@pytest.mark.parametrize(
    "wanted,header,expected",
    [
        ("es", None, "es"),
        ("ES", None, "es"),
        ("es-419", None, "es"),
        (None, "fr-CH, fr;q=0.9, es;q=0.8, *;q=0.5", "es"),
        (None, "es;q=0, en", "en"),
        (None, "xx;q=abc", "en"),
        ("", "", "en"),
        ("fr", None, "en"),
    ],
)
def test_negotiation(wanted, header, expected):
    assert negotiate(available=["es"], default="en", lang=wanted, accept_language=header) == expected


def _protocol_with(demo_protocol_source: str, translations: dict) -> dict:
    data = yaml.safe_load(demo_protocol_source)
    guess = next(i for i in data["instruments"] if i["slug"] == "blinding-guess")
    guess["translations"] = translations
    return data


@pytest.mark.parametrize(
    "translations,error",
    [
        ({"es": {"items": {"nope": "x"}}}, "unknown items: nope"),
        ({"es": {"choices": {"guess": {"maybe": "Quizás"}}}}, "unknown values: maybe"),
        ({"es": {"choices": {"confidence": {"1": "x"}}}}, "neither a choice set nor an item"),
        ({"Spanish!": {"title": "x"}}, "translations.Spanish!"),
        ({"es": {"titel": "x"}}, "titel"),
    ],
)
def test_bad_translations_are_rejected_by_the_validator(demo_protocol_source, translations, error):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as exc:
        Protocol.model_validate(_protocol_with(demo_protocol_source, translations))
    assert error in str(exc.value)


def test_safety_contact_accepts_plain_text_or_per_language(demo_protocol_source):
    data = yaml.safe_load(demo_protocol_source)
    data["safety_contact"] = {"contact": "Call the team", "helpline": {"en": "999", "es": "112"}}
    protocol = Protocol.model_validate(data)
    assert protocol.safety_contact.contact == "Call the team"
    data["safety_contact"] = {"contact": {"en": ""}, "helpline": "999"}
    with pytest.raises(Exception, match="at least 1 character"):
        Protocol.model_validate(data)
