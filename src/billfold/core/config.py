"""Settings from ``BILLFOLD_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
