"""Settings from ``BILLFOLD_*`` environment variables."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BILLFOLD_", extra="ignore")

    database_url: str = "sqlite:///./var/billfold.db"
    data_dir: Path = Path("./var")
    base_url: str = "http://127.0.0.1:8000"
    # smtp://host:port, smtps://host:port, optional user:password@ and ?starttls=1.
    # Unset: mail is written as .eml files under <data_dir>/mail/.
    smtp_url: str | None = None
    # The From of every email. The default suits a laptop; a real deployment sets
    # BILLFOLD_MAIL_FROM to an address its SMTP server may send as.
    mail_from: str = "Billfold <billfold@localhost>"
    # Largest request body the API accepts, in bytes.
    max_body_bytes: int = 1_048_576
    # Idempotency records are kept at least this long (DESIGN.md decision 7 asks for 24 h).
    idempotency_retention_hours: int = 48
    # A request that holds an idempotency key longer than this is presumed dead.
    idempotency_lock_seconds: int = 300
    log_level: str = "INFO"
    # Each API process of `billfold serve` keeps its event loop and request threads on one
    # CPU of its own (core/affinity.py: a third less CPU per request, measured). Off: the
    # system schedules them anywhere.
    pin_cpus: bool = True
    # `billfold serve` writes a line per request (uvicorn's access log). Off by default,
    # as gunicorn's is: a proxy in front usually logs requests, and with it the server's
    # CPU a pay session was 0.88-1.07 ms against 0.84-0.86 (README, "Where the remaining
    # time goes").
    access_log: bool = False
    # Keys instrument fingerprints (a blocked bank account is recognised by it). Unset:
    # a random key kept in <data_dir>/secret.key, made on first use; several machines
    # sharing one database must all set the same BILLFOLD_SECRET_KEY.
    secret_key: str | None = None
    # The gateway live mode charges through. Unset: live mode takes no payments (test mode
    # always uses the built-in test gateway). "test" makes live mode use it too.
    live_gateway: str | None = None
    # Business days until a bank (ACH) payment of the test gateway settles or is returned.
    ach_settlement_days: int = 2
    # Threads a worker process (and the bill-run command) runs its heavy jobs in: invoice
    # renders and bill-run chunks. Typst lets go of the GIL while it typesets, and a chunk
    # while PostgreSQL writes its rows, so each thread keeps a core busy. Unset: one per
    # core. BILLFOLD_RENDER_THREADS, its earlier name, is read too.
    worker_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, le=64,
        validation_alias=AliasChoices("BILLFOLD_WORKER_THREADS", "BILLFOLD_RENDER_THREADS",
                                      "worker_threads"))


def instance_key(settings: Settings) -> bytes:
    """The installation's secret key: BILLFOLD_SECRET_KEY, or the one kept in the data
    directory (created with owner-only permissions the first time)."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = settings.data_dir / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under another name, then linked into place: whoever comes second
        # (another process, or serve's worker thread starting beside its app) reads a
        # complete key, never the empty file of a writer still at work.
        draft = path.with_name(f".secret.key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another one made it first: theirs is the key
        finally:
            os.unlink(draft)
    return path.read_text().strip().encode()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
