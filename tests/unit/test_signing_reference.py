"""The Standard Webhooks sample vectors checked by the reference library itself
(``standardwebhooks``), beside test_signing.py's byte-for-byte reproduction: the library
accepts the valid vectors and refuses the one that must be refused, and accepts what
Billfold signs for the same message.

The vectors were signed at 1614265330 and the library refuses a timestamp more than five
minutes from its own clock, so its clock is set to that moment (the vectors' own note:
"when 'now' is set to 1614265330")."""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import webhooks as reference
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from billfold.notifications import signing

VECTORS = Path("/work/shared/samples/webhooks/standard-webhooks-vectors.json")


def vector(name_starts: str) -> dict[str, Any]:
    found = [v for v in json.loads(VECTORS.read_text())["vectors"]
             if v["name"].startswith(name_starts)]
    assert len(found) == 1, name_starts
    return dict(found[0])


SIGNED = vector("symmetric sign (fixed timestamp)")
MUST_REJECT = vector("symmetric invalid signature")
MULTI = vector("multi-signature header")


def headers(v: dict[str, Any], signature: str) -> dict[str, str]:
    return {"webhook-id": v["msg_id"], "webhook-timestamp": str(v["timestamp"]),
            "webhook-signature": signature}


@pytest.fixture
def library_clock_at_the_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference library's ``datetime.now`` answers the vectors' signing time."""
    at = datetime.fromtimestamp(SIGNED["timestamp"], UTC)

    class AtTheVectors(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Any:
            return at if tz is not None else at.replace(tzinfo=None)

    monkeypatch.setattr(reference, "datetime", AtTheVectors)


@pytest.mark.usefixtures("library_clock_at_the_vectors")
class TestTheReferenceLibraryOnTheVectors:
    def test_accepts_the_signed_vector(self):
        body = Webhook(SIGNED["secret"]).verify(
            SIGNED["payload"], headers(SIGNED, SIGNED["expected_signature"]))

        assert body == json.loads(SIGNED["payload"])

    def test_refuses_the_vector_that_must_be_refused(self):
        with pytest.raises(WebhookVerificationError, match="No matching signature"):
            Webhook(MUST_REJECT["secret"]).verify(
                MUST_REJECT["payload"], headers(MUST_REJECT, MUST_REJECT["header_signature"]))

    def test_accepts_the_multi_signature_header_for_its_one_valid_entry(self):
        assert Webhook(MULTI["secret"]).verify(
            MULTI["payload"], headers(MULTI, MULTI["header_signature"]), json_parse=False) is None

    def test_accepts_billfolds_signature_of_the_vectors_message(self):
        ours = signing.headers([SIGNED["secret"]], SIGNED["msg_id"], SIGNED["timestamp"],
                               SIGNED["payload"].encode())

        assert Webhook(SIGNED["secret"]).verify(SIGNED["payload"], ours) == \
            json.loads(SIGNED["payload"])

    def test_refuses_the_signed_vector_with_its_payload_changed(self):
        changed = SIGNED["payload"].replace("2432232314", "2432232315")

        with pytest.raises(WebhookVerificationError):
            Webhook(SIGNED["secret"]).verify(changed, headers(SIGNED, SIGNED["expected_signature"]))


class TestTheLibrarysOwnClock:
    def test_on_the_real_clock_the_vector_is_too_old(self):
        # What the clock fixture above is for: without it, the library refuses on time.
        with pytest.raises(WebhookVerificationError, match="too old"):
            Webhook(SIGNED["secret"]).verify(
                SIGNED["payload"], headers(SIGNED, SIGNED["expected_signature"]))
