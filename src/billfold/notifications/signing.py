"""Standard Webhooks signatures (https://www.standardwebhooks.com): an HMAC-SHA256 of
``{msg_id}.{timestamp}.{body}`` under a ``whsec_`` secret, sent as ``v1,<base64>``.

Receivers verify with any Standard Webhooks library. During a secret rotation a message
carries one signature per secret, so a receiver holding either one accepts it."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from secrets import token_bytes

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 24  # the spec asks for 24 to 64 bytes


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(token_bytes(SECRET_BYTES)).decode("ascii")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,…`` signature of one message under one secret."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every secret in ``secrets``."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets),
    }


def _key(secret: str) -> bytes:
    # The prefix is optional in the spec's test vectors; the key is what follows it.
    encoded = secret.removeprefix(SECRET_PREFIX)
    key = base64.b64decode(encoded, validate=True)
    if not key:
        raise ValueError("an empty webhook secret cannot sign")
    return key
