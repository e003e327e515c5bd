"""A postback queued while a test-mode tenant allowed private targets goes to a private
address only if the tenant still allows it when the worker sends it (its retries and
resends included): the worker's own job handlers, a real receiver on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from billfold import cli
from billfold.core import clock, jobs
from billfold.core.config import Settings
from billfold.core.db import transaction
from billfold.core.scope import Scope
from billfold.customers import settings as settings_service
from billfold.notifications import webhooks
from billfold.notifications.webhook_models import WebhookDelivery
from billfold.tenants import service as tenants
from tests.services.conftest import frozen_at, sessions_on_a_fresh_database
from tests.services.test_webhooks import fetch, postback, receiving

sessions = sessions_on_a_fresh_database()


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    with frozen_at(datetime.now(UTC).replace(microsecond=0)) as frozen_clock:
        yield frozen_clock


def allow_private(sessions: sessionmaker[Session], scope: Scope, on: bool) -> None:
    with sessions() as session, transaction(session):
        settings_service.update_settings(session, scope, {"allow_private_postback_targets": on})


def work(sessions: sessionmaker[Session], tmp_path: Path) -> int:
    """One round of the worker's webhook jobs, with the handlers the worker runs."""
    handlers = cli._job_handlers(Settings(data_dir=tmp_path / "var"))
    return jobs.run_pending(sessions, handlers, worker_id="test-worker",
                            kinds=[webhooks.DELIVER_WEBHOOK])


@pytest.mark.usefixtures("frozen")
@pytest.mark.parametrize("still_allowed", [True, False])
def test_a_private_target_is_judged_when_sent(sessions, tmp_path, still_allowed) -> None:
    with sessions() as session, transaction(session):
        scope = Scope(tenants.create_tenant(session, name="Test Biller").id, "test")
    allow_private(sessions, scope, True)
    with receiving() as receiver:
        with sessions() as session:
            assert tenants.private_targets_allowed(session, scope)
        queued = postback(sessions, scope, receiver.url(), json_body={"type": "x"},
                          allow_private=True)
        allow_private(sessions, scope, still_allowed)
        assert work(sessions, tmp_path) == 1
        sent: WebhookDelivery = fetch(sessions, WebhookDelivery, queued.id)
        if still_allowed:
            assert sent.status == "succeeded"
            assert len(receiver.requests) == 1
        else:
            assert sent.status == "queued"  # to be retried, should the tenant allow it again
            assert "loopback" in (sent.last_error or "")
            assert receiver.requests == []
