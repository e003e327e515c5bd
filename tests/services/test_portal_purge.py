"""The worker's clean-up of the portal's tables: sessions and one-use tokens that can no
longer sign anyone in, and SSO token ids whose tokens have expired, are deleted; what
still works is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billfold.access import payers, sso
from billfold.access.models import PayerSession, PayerToken, SsoTokenUse
from billfold.core import clock
from billfold.core.db import transaction
from billfold.core.scope import Scope
from tests.services.conftest import frozen_at

START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def ids_of(sessions: sessionmaker[Session], model: type, column: str) -> set[str]:
    with sessions() as s:
        return set(s.scalars(select(getattr(model, column))))


def test_purge_keeps_what_still_works(sessions: sessionmaker[Session], scope: Scope) -> None:
    with frozen_at(START) as frozen, sessions() as s:
        with transaction(s):
            user = payers.new_user(s, scope, email="purge@payer.example", name="P",
                                   password="long enough password", verified=True)
            ended, _ = payers.start_session(s, user, method="password")
            payers.end_session(s, ended)
            idle, _ = payers.start_session(s, user, method="password")
            used = payers.issue_token(s, user, "reset_password")
            s.add(SsoTokenUse(tenant_id=scope.tenant_id, mode=scope.mode, jti="old-jti",
                              payer_session_id=None, used_at=clock.utcnow(),
                              expires_at=clock.utcnow() + timedelta(minutes=6)))
        with transaction(s):
            assert payers.use_token(s, scope, used, "reset_password") is not None
        frozen.advance(timedelta(hours=3))  # past the idle limit of the earlier sessions
        with transaction(s):
            fresh, _ = payers.start_session(s, user, method="password")
            waiting = payers.issue_token(s, user, "registration")
            s.add(SsoTokenUse(tenant_id=scope.tenant_id, mode=scope.mode, jti="new-jti",
                              payer_session_id=None, used_at=clock.utcnow(),
                              expires_at=clock.utcnow() + timedelta(minutes=6)))
        mine = {ended.id, idle.id, fresh.id}
        with transaction(s):
            removed = payers.purge_expired(s, before=clock.utcnow()) \
                + sso.forget_spent(s, before=clock.utcnow())
    assert removed >= 4
    assert ids_of(sessions, PayerSession, "id") & mine == {fresh.id}
    left = ids_of(sessions, PayerToken, "token_hash")
    assert payers.digest(waiting) in left
    assert payers.digest(used) not in left
    jtis = ids_of(sessions, SsoTokenUse, "jti")
    assert "new-jti" in jtis
    assert "old-jti" not in jtis
