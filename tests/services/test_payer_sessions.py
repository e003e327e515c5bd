"""A portal session lives while it is used: it ends after two hours without a request,
after twelve hours in all, when signed out, and when its user signs out everywhere; only
the cookie's digest is stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from billfold.access import payers
from billfold.access.models import PayerSession
from billfold.core.db import transaction
from billfold.core.scope import Scope
from tests.services.conftest import frozen_at

START = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def signed_in(sessions: sessionmaker[Session], cookie: str) -> bool:
    with sessions() as s, transaction(s):
        return payers.session_of(s, cookie) is not None


def new_session(sessions: sessionmaker[Session], scope: Scope, email: str) -> str:
    with sessions() as s, transaction(s):
        user = payers.new_user(s, scope, email=email, name="P", verified=True)
        row, cookie = payers.start_session(s, user, method="password")
        assert row.token_hash == payers.digest(cookie) != cookie
        return cookie


def test_idle_for_two_hours_ends_it(sessions: sessionmaker[Session], scope: Scope) -> None:
    with frozen_at(START) as frozen:
        cookie = new_session(sessions, scope, "idle@payer.example")
        frozen.advance(payers.SESSION_IDLE - timedelta(seconds=1))
        assert signed_in(sessions, cookie)
        frozen.advance(payers.SESSION_IDLE - timedelta(seconds=1))  # used a moment ago
        assert signed_in(sessions, cookie)
        frozen.advance(payers.SESSION_IDLE)
        assert not signed_in(sessions, cookie)


def test_use_keeps_it_alive_for_twelve_hours_and_no_longer(
        sessions: sessionmaker[Session], scope: Scope) -> None:
    with frozen_at(START) as frozen:
        cookie = new_session(sessions, scope, "busy@payer.example")
        while frozen.now() + timedelta(hours=1) < START + payers.SESSION_LIFETIME:
            frozen.advance(timedelta(hours=1))
            assert signed_in(sessions, cookie)
        frozen.advance(timedelta(hours=1))
        assert not signed_in(sessions, cookie)


def test_sign_out_and_sign_out_everywhere(sessions: sessionmaker[Session], scope: Scope) -> None:
    with frozen_at(START):
        first = new_session(sessions, scope, "out@payer.example")
        with sessions() as s, transaction(s):
            found = payers.session_of(s, first)
            assert found is not None
            user = found[1]
            _, second = payers.start_session(s, user, method="password")
            _, third = payers.start_session(s, user, method="password")
            payers.end_session(s, s.get_one(PayerSession, found[0].id))
        assert not signed_in(sessions, first)
        assert signed_in(sessions, second)
        with sessions() as s, transaction(s):
            found = payers.session_of(s, second)
            assert found is not None
            payers.end_all_sessions(s, found[1])
        assert not signed_in(sessions, second)
        assert not signed_in(sessions, third)


def test_unknown_and_oversized_cookies_sign_no_one_in(sessions: sessionmaker[Session]) -> None:
    for cookie in (None, "", "nope", "x" * 101):
        assert not signed_in(sessions, cookie)  # type: ignore[arg-type]
