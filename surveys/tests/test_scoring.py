"""Scoring and answer validation against published figures (PHQ-9, GAD-7; Kroenke 2001, Spitzer 2006), and
the format's expressiveness for instruments we do not ship (PANAS subscales, QIDS-SR16 max rule)."""

from pathlib import Path

import pytest

from surveys.scoring import score_answers
from surveys.validation import validate_answers
from trialsite.protocol.schema import Instrument
from trialsite.protocol.services import protocol_parse

DEMO = Path(__file__).resolve().parents[2] / "protocols" / "microdose-mood.yaml"


@pytest.fixture(scope="module")
def definitions():
    protocol = protocol_parse(DEMO.read_text(encoding="utf-8"))
    return {i.slug: i.model_dump(mode="json") for i in protocol.instruments}


# Reference table: items 1..9 → total, band, item-9 alert.
PHQ9_CASES = [
    ([0, 0, 0, 0, 0, 0, 0, 0, 0], 0, "minimal"),
    ([1, 1, 1, 1, 1, 0, 0, 0, 0], 5, "mild"),
    ([2, 2, 2, 2, 1, 1, 0, 0, 0], 10, "moderate"),
    ([2, 2, 2, 2, 2, 2, 2, 1, 0], 15, "moderately severe"),
    ([3, 3, 3, 3, 2, 2, 2, 2, 0], 20, "severe"),
    ([0, 0, 0, 0, 0, 0, 0, 0, 1], 1, "minimal"),
    ([1, 1, 1, 2, 2, 3, 3, 3, 0], 16, "moderately severe"),
]
GAD7_CASES = [
    ([1, 1, 1, 1, 0, 0, 0], 4, "minimal"),
    ([2, 2, 2, 1, 1, 1, 0], 9, "mild"),
    ([2, 2, 2, 2, 2, 2, 2], 14, "moderate"),
    ([3, 2, 2, 2, 2, 2, 2], 15, "severe"),
]


@pytest.mark.parametrize(("items", "total", "band"), PHQ9_CASES)
def test_phq9_reference_scores(definitions, items, total, band):
    answers = {f"phq9_{n}": v for n, v in enumerate(items, 1)}
    checked = validate_answers(definitions["phq9"], answers)
    assert checked.ok, checked.errors
    [score] = score_answers(definitions["phq9"], checked.answers)
    assert (score.key, score.value, score.band, score.scored) == ("total", total, band, True)


@pytest.mark.parametrize(("items", "total", "band"), GAD7_CASES)
def test_gad7_reference_scores(definitions, items, total, band):
    answers = {f"gad7_{n}": v for n, v in enumerate(items, 1)}
    [score] = score_answers(definitions["gad7"], validate_answers(definitions["gad7"], answers).answers)
    assert (score.value, score.band) == (total, band)


def test_phq9_difficulty_item_is_optional_and_unscored(definitions):
    answers = {f"phq9_{n}": 1 for n in range(1, 10)} | {"phq9_difficulty": 3}
    [score] = score_answers(definitions["phq9"], validate_answers(definitions["phq9"], answers).answers)
    assert score.value == 9


def test_missing_item_is_not_scored(definitions):
    answers = {f"phq9_{n}": 3 for n in range(1, 9)}  # item 9 missing (validation would refuse it too)
    [score] = score_answers(definitions["phq9"], answers)
    assert (score.value, score.scored, score.items_missing, score.band) == (None, False, 1, "")


def test_validation_names_each_bad_item(definitions):
    answers = {f"phq9_{n}": 0 for n in range(1, 10)}
    answers |= {"phq9_3": 4, "phq9_4": "1", "phq9_5": True, "bogus": 1}
    del answers["phq9_9"]
    result = validate_answers(definitions["phq9"], answers)
    assert set(result.errors) == {
        "answers.phq9_3",
        "answers.phq9_4",
        "answers.phq9_5",
        "answers.phq9_9",
        "answers.bogus",
    }
    assert result.errors["answers.phq9_9"] == ["This item is required."]


def test_validation_of_sliders_booleans_and_text(definitions):
    good = {"mood": 55, "anxiety": 0, "energy": 100, "focus": 50.0, "dose_taken": False}
    result = validate_answers(definitions["daily-mood"], good)
    assert result.ok and result.answers["focus"] == 50
    bad = {"mood": 101, "anxiety": -1, "energy": 5.5, "focus": None, "dose_taken": 1, "side_effect": "x" * 2001}
    result = validate_answers(definitions["daily-mood"], bad)
    assert set(result.errors) == {f"answers.{k}" for k in bad}
    assert validate_answers(definitions["daily-mood"], [1, 2]).errors == {
        "answers": ["An object of item key → answer is expected."]
    }


def _instrument(items: list[dict], scores: list[dict], **extra) -> dict:
    return Instrument.model_validate(
        {"slug": "x", "version": 1, "title": "X", "items": items, "scoring": {"scores": scores}, **extra}
    ).model_dump(mode="json")


def test_format_expresses_panas_subscales():
    positive = [1, 3, 5, 9, 10, 12, 14, 16, 17, 19]
    negative = [n for n in range(1, 21) if n not in positive]
    definition = _instrument(
        [{"key": f"panas_{n}", "type": "integer", "min": 1, "max": 5, "text": f"item {n}"} for n in range(1, 21)],
        [
            {"key": "positive_affect", "method": "sum", "items": [f"panas_{n}" for n in positive]},
            {"key": "negative_affect", "method": "sum", "items": [f"panas_{n}" for n in negative]},
        ],
    )
    answers = {f"panas_{n}": (5 if n in positive else 1) for n in range(1, 21)}
    assert validate_answers(definition, answers).ok
    scores = {s.key: s.value for s in score_answers(definition, answers)}
    assert scores == {"positive_affect": 50, "negative_affect": 10}
    answers["panas_2"] = 4
    assert {s.key: s.value for s in score_answers(definition, answers)}["negative_affect"] == 13


def test_format_expresses_qids_sr16_max_rule():
    items = [{"key": f"q{n}", "type": "integer", "min": 0, "max": 3, "text": f"item {n}"} for n in range(1, 17)]
    definition = _instrument(
        items,
        [
            {
                "key": "total",
                "method": "sum",
                "items": ["q5", "q10", "q11", "q12", "q13", "q14"],
                "max_groups": [["q1", "q2", "q3", "q4"], ["q6", "q7", "q8", "q9"], ["q15", "q16"]],
                "bands": [
                    {"min": 0, "max": 5, "label": "none"},
                    {"min": 6, "max": 10, "label": "mild"},
                    {"min": 11, "max": 15, "label": "moderate"},
                    {"min": 16, "max": 20, "label": "severe"},
                    {"min": 21, "max": 27, "label": "very severe"},
                ],
            }
        ],
    )
    values = [1, 3, 0, 2, 2, 0, 1, 2, 0, 1, 1, 0, 2, 2, 1, 0]  # reference example → 14 (moderate)
    [score] = score_answers(definition, {f"q{n}": v for n, v in enumerate(values, 1)})
    assert (score.value, score.band) == (14, "moderate")


def test_reverse_scoring_and_prorating():
    definition = _instrument(
        [{"key": f"w{n}", "type": "integer", "min": 1, "max": 5, "text": f"item {n}"} for n in range(1, 5)],
        [
            {
                "key": "total",
                "method": "sum",
                "items": ["w1", "w2", "w3", "w4"],
                "reverse": {"w2": 6},
                "missing": "prorate",
                "max_missing": 1,
            },
            {"key": "mean", "method": "mean", "items": ["w1", "w2", "w3", "w4"], "reverse": {"w2": 6}},
        ],
    )
    scores = {s.key: s.value for s in score_answers(definition, {"w1": 5, "w2": 1, "w3": 4, "w4": 2})}
    assert scores == {"total": 5 + 5 + 4 + 2, "mean": 4.0}
    prorated = {s.key: s for s in score_answers(definition, {"w1": 5, "w2": 1, "w3": 3})}
    assert prorated["total"].value == pytest.approx((5 + 5 + 3) / 3 * 4) and prorated["total"].items_missing == 1
    assert prorated["mean"].scored is False
    assert score_answers(definition, {"w1": 5, "w2": 1})[0].scored is False  # two missing > max_missing


def test_enable_when_skips_items():
    definition = Instrument.model_validate(
        {
            "slug": "x",
            "version": 1,
            "title": "X",
            "items": [
                {"key": "smoker", "type": "boolean", "text": "Do you smoke?"},
                {
                    "key": "per_day",
                    "type": "integer",
                    "min": 1,
                    "max": 100,
                    "text": "How many a day?",
                    "enable_when": {"item": "smoker", "op": "eq", "value": True},
                },
            ],
        }
    ).model_dump(mode="json")
    assert validate_answers(definition, {"smoker": False}).ok
    assert validate_answers(definition, {"smoker": False, "per_day": None}).ok
    assert "answers.per_day" in validate_answers(definition, {"smoker": False, "per_day": 3}).errors
    assert validate_answers(definition, {"smoker": True}).errors == {"answers.per_day": ["This item is required."]}
    assert validate_answers(definition, {"smoker": True, "per_day": 3}).answers == {"smoker": True, "per_day": 3}
