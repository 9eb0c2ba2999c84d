"""GET /api/v1/me is rendered by one bound MeOutputSerializer (trialsite.api.rendering): the body equals what a
fresh serializer gives, for participants in different states, and the serializer stays the one definition."""

from __future__ import annotations

from datetime import time

import pytest
from rest_framework import serializers

from participants.api.views import me_data
from participants.api.views.phone import MeOutputSerializer, me_values
from participants.models import Participant, ParticipantStatus, PushSubscription, WithdrawalScope
from participants.services import participant_enrol
from trialsite.api.rendering import render

from .conftest import sign_consent

pytestmark = pytest.mark.django_db


def _states(register, trial):
    """Participants in the states /me shows differently: not consented (needs consent, no quiet hours of their
    own), consented with their own quiet hours and push without a device, push with a Web Push subscription,
    withdrawn from everything."""
    fresh, _ = register(contact={"email": "a@example.org"})

    consented, _ = register(contact={"email": "b@example.org"}, tz="America/New_York")
    sign_consent(consented)
    consented.quiet_hours_start, consented.quiet_hours_end = time(21, 15), time(6, 45)
    consented.channels = ["email", "push"]
    consented.save()

    pushed, _ = register()
    sign_consent(pushed)
    pushed.channels = ["push"]
    pushed.save()
    PushSubscription.objects.create(participant=pushed, endpoint="https://push.example.org/x", p256dh="k", auth="a")

    withdrawn, _ = register()
    sign_consent(withdrawn)
    withdrawn.status, withdrawn.withdrawal_scope = ParticipantStatus.WITHDRAWN, WithdrawalScope.ALL
    withdrawn.save()
    return [fresh, consented, pushed, withdrawn]


def test_the_fast_rendering_equals_the_serializers_output(register, trial):
    participants = _states(register, trial)
    bodies = []
    for participant in participants:
        values = me_values(participant)
        body = me_data(participant)
        assert body == MeOutputSerializer(values).data
        assert set(body) == set(MeOutputSerializer().fields)
        bodies.append(body)
    # The states really differ where /me shows them.
    assert [b["consent"]["needs_consent"] for b in bodies] == [True, False, False, False]
    assert bodies[1]["quiet_hours"] == {"start": "21:15", "end": "06:45"} and bodies[1]["channels"] == ["email"]
    assert bodies[0]["quiet_hours"] == {"start": "22:00", "end": "07:30"}  # the protocol's default
    assert bodies[2]["channels"] == ["push"] and bodies[3]["status"] == "withdrawn"
    assert bodies[1]["consent"]["signed_at"] == "2026-01-10T09:00:00Z"


def test_get_me_over_http_is_that_rendering(register, api_client, trial):
    participant, code = register(contact={"email": "c@example.org"})
    _, token = participant_enrol(code=code)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    participant.refresh_from_db()
    assert api_client.get("/api/v1/me").json() == MeOutputSerializer(me_values(participant)).data


def test_render_refuses_serializers_that_read_their_context():
    class NeedsContext(serializers.Serializer):
        now = serializers.SerializerMethodField()

        def get_now(self, obj) -> str:
            return self.context["now"]

    class Nested(serializers.Serializer):
        inner = NeedsContext()

    with pytest.raises(TypeError, match="context"):
        render(NeedsContext, {})
    with pytest.raises(TypeError, match=r"Nested\.inner\.now"):
        render(Nested, {"inner": {}})


# --- the consent rows read with the bearer token (participants.token_join) ---------------------------------------


def _decision(state):
    """What consent_status decides, by key: the version in force, the signature of it, the latest signature."""
    return (
        state.current.pk if state.current else None,
        state.signed.pk if state.signed else None,
        state.last_signed.pk if state.last_signed else None,
        state.needs_consent,
        state.current.version if state.current else None,
        state.last_signed.signed_at if state.last_signed else None,
    )


def test_the_consent_read_with_the_token_is_decided_as_consent_status_decides(register, trial):
    """/me decides consent on the rows its token lookup read, with consent_status_of: the same answer as
    consent_status (its own query) in every consent state, on dates before, inside and after the documents'
    validity."""
    from datetime import UTC, date, datetime, timedelta

    from participants.models import ConsentDocument, ConsentSignature
    from participants.selectors import consent_status
    from participants.token_join import NAME
    from trialsite.api.auth import token_lookup

    participant, code = register(contact={"email": "d@example.org"})
    _, key = participant_enrol(code=code)
    first = ConsentDocument.objects.get(trial=trial, version="1.0")
    today = date(2026, 6, 1)
    dates = [first.valid_from - timedelta(days=1), first.valid_from, today, today + timedelta(days=40)]
    seen = set()

    def document(version, *, valid_from, valid_to=None, reconsent=False):
        return ConsentDocument.objects.create(
            trial=trial,
            version=version,
            title=version,
            body="text",
            sha256=version * 8,
            valid_from=valid_from,
            valid_to=valid_to,
            requires_reconsent=reconsent,
            protocol_version_id=first.protocol_version_id,
        )

    def sign(doc, day):
        return ConsentSignature.objects.create(
            participant=participant,
            document=doc,
            method="electronic",
            sha256=doc.sha256,
            signed_at=datetime(day.year, day.month, day.day, 9, tzinfo=UTC),
        )

    def same_everywhere():
        phone = token_lookup(key=key, now=datetime.now(UTC)).joined[NAME]
        assert phone.participant.pk == participant.pk
        for on in dates:
            expected = _decision(consent_status(participant=participant, on=on))
            assert _decision(phone.consent_status(on=on)) == expected, on
            seen.add(expected[3])

    same_everywhere()  # never signed
    sign(first, today - timedelta(days=30))
    same_everywhere()  # signed the version in force
    second = document("2.0", valid_from=today - timedelta(days=2), reconsent=True)
    same_everywhere()  # an amendment that requires re-consent, not signed
    sign(second, today - timedelta(days=1))
    same_everywhere()  # signed again
    document("3.0", valid_from=today - timedelta(days=1))
    same_everywhere()  # an amendment that does not require re-consent: the earlier signature covers it
    document("4.0", valid_from=today + timedelta(days=30), reconsent=True)
    same_everywhere()  # a future version requiring re-consent
    ConsentDocument.objects.filter(version="3.0", trial=trial).update(valid_to=today - timedelta(days=1))
    same_everywhere()  # a version that ended
    assert seen == {True, False}  # the states really differ


def test_render_gives_what_drf_gives_where_a_plain_lookup_would_not():
    """The planned rendering asks the field itself for what a plain key/attribute lookup cannot answer as DRF does:
    defaults, optional fields left out, callables, missing related objects, nested None, '*' sources."""

    class Inner(serializers.Serializer):
        a = serializers.IntegerField()

    class Thing:
        def __init__(self):
            self.inner = None
            self.items = [1, None, 3]

        def shout(self):
            return "HI"

        @property
        def broken(self):
            raise Participant.DoesNotExist

    class Outer(serializers.Serializer):
        shout = serializers.CharField()
        inner = Inner(allow_null=True)
        items = serializers.ListField(child=serializers.IntegerField(allow_null=True))
        missing = serializers.CharField(default="d")
        optional = serializers.CharField(required=False)
        broken = serializers.CharField(allow_null=True)
        whole = serializers.CharField(source="*")

    thing = Thing()
    assert render(Outer, thing) == Outer(thing).data
    assert render(Outer, thing)["shout"] == "HI" and "optional" not in render(Outer, thing)
    values = {"shout": "x", "inner": {"a": "5"}, "items": [], "optional": "o", "broken": None, "whole": 1}
    assert render(Outer, values) == Outer(values).data
