"""VAPID keys: the management command's pair works with py-vapid, and `make run` gets a development pair."""

from __future__ import annotations

import os
import stat

from py_vapid import Vapid

from trialsite import vapid


def test_webpush_keys_prints_a_working_pair(call):
    out = call("webpush_keys", "--subject", "mailto:team@example.org")
    lines = dict(line.split("=", 1) for line in out.strip().splitlines())
    assert set(lines) == {"WEBPUSH_VAPID_PRIVATE_KEY", "WEBPUSH_VAPID_PUBLIC_KEY", "WEBPUSH_VAPID_SUBJECT"}
    key = vapid.private_key_load(lines["WEBPUSH_VAPID_PRIVATE_KEY"])
    assert vapid.public_key_of(key) == lines["WEBPUSH_VAPID_PUBLIC_KEY"]
    # py-vapid (what pywebpush signs with) reads the same private key and signs with the same public key.
    header = Vapid.from_string(lines["WEBPUSH_VAPID_PRIVATE_KEY"]).sign(
        {"sub": "mailto:team@example.org", "aud": "https://push.example.net"}
    )["Authorization"]
    assert header.endswith(f"k={lines['WEBPUSH_VAPID_PUBLIC_KEY']}")
    assert len(vapid._b64url_decode(lines["WEBPUSH_VAPID_PUBLIC_KEY"])) == 65


def test_development_keys_are_made_once_and_kept_private(tmp_path):
    first = vapid.dev_keys_ensure(tmp_path)
    path = tmp_path / "webpush" / "vapid.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert vapid.dev_keys_ensure(tmp_path) == first
    assert (
        vapid.public_key_of(vapid.private_key_load(first["WEBPUSH_VAPID_PRIVATE_KEY"]))
        == first["WEBPUSH_VAPID_PUBLIC_KEY"]
    )
