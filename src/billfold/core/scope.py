"""Whose data a call works on: one tenant in one mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["test", "live"]
MODES: tuple[Mode, ...] = ("test", "live")


@dataclass(frozen=True, slots=True)
class Scope:
    tenant_id: str
    mode: Mode
