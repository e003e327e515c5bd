"""Time-ordered ids (UUIDv7, RFC 9562) shown with a type prefix: ``cus_0193…``."""

from __future__ import annotations

import os
import re
import threading
import time

PREFIXES = {
    "tenant": "ten",
    "api_key": "key",
    "customer": "cus",
    "billing_account": "ba",
    "bill_cycle": "bc",
    "account_category": "acat",
    "payment_term": "pt",
    "custom_field": "cf",
    "note": "note",
    "contact": "con",
    "history": "hist",
    "ledger_account": "la",
    "ledger_entry": "le",
    "ledger_posting": "lp",
    "job": "job",
    "outbox_message": "msg",
    "product": "prod",
    "price": "price",
    "tax_rate": "txr",
    "tax_exemption": "txe",
    "order": "ord",
    "order_line": "ordl",
    "service": "svc",
    "service_quantity": "svq",
    "pending_charge": "chg",
    "invoice": "inv",
    "invoice_line": "il",
    "bill_run": "br",
    "bill_run_chunk": "brc",
    "bill_run_account": "bra",
    "adjustment": "adj",
    "print_batch": "pb",
    "invoice_distribution_rule": "idr",
    "webhook_endpoint": "whe",
    "webhook_delivery": "whd",
    "event": "evt",
    "postback_secret": "pbs",
    "pay_session": "ps",
    "payment": "pay",
    "payment_allocation": "pal",
    "refund": "re",
    "dispute": "dp",
    "gateway_event": "gev",
    "test_gateway_charge": "tgc",
    "test_gateway_event": "tge",
    "test_gateway_refund": "tgr",
    "entry": "ent",
    "blocked_bank_account": "bba",
    "payer_user": "pu",
    "payer_grant": "pg",
    "payer_session": "pss",
    "payer_token": "ptk",
    "sso_credential": "sso",
    "saved_method": "pm",
    "autopay_enrollment": "ape",
    "autopay_attempt": "apa",
}

_lock = threading.Lock()
_last_ms = 0
_counter = 0
# Random bits come from os.urandom a few kilobytes at a time: one system call per id was
# 6% of a bill run, which makes a dozen ids per invoice.
_RANDOM_CHUNK = 4096
_random = b""
_used = 0


def uuid7_hex() -> str:
    """32 hex digits of a UUIDv7; strictly increasing within this process."""
    global _last_ms, _counter, _random, _used
    with _lock:
        if _used + 10 > len(_random):
            _random, _used = os.urandom(_RANDOM_CHUNK), 0
        bits = _random[_used:_used + 10]
        _used += 10
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _counter = ms, int.from_bytes(bits[8:], "big") & 0x3FF
        else:
            # Same (or earlier) millisecond: keep order with the 12-bit counter and,
            # when it runs out, borrow the next millisecond.
            _counter += 1
            if _counter > 0xFFF:
                _last_ms, _counter = _last_ms + 1, 0
        ms, counter = _last_ms, _counter
    rand = int.from_bytes(bits[:8], "big") & 0x3FFF_FFFF_FFFF_FFFF
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
    return f"{value:032x}"


def _forget_random() -> None:
    # A forked process must not hand out the random bits its parent still holds.
    global _random, _used
    _random, _used = b"", 0


os.register_at_fork(after_in_child=_forget_random)


def new_id(kind: str) -> str:
    return f"{PREFIXES[kind]}_{uuid7_hex()}"


_ID = re.compile(r"^([a-z]+)_([0-9a-f]{32})$")


def is_id(kind: str, value: str) -> bool:
    match = _ID.fullmatch(value)  # with match(), "$" would let a trailing newline in
    return match is not None and match.group(1) == PREFIXES[kind]
