"""Rate limits for sign-in, registration, password reset and SSO: a sliding window per
key, kept in this process. A deployment with several API processes multiplies the
allowance by their number, which still stops guessing at scale; a shared store would be
the next step.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Limit:
    """At most ``count`` events per key in any ``seconds``."""

    count: int
    seconds: float
    _hits: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, key: str) -> bool:
        """Count one event for ``key``; False when it is over the limit (not counted)."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.seconds:
                hits.popleft()
            if len(hits) >= self.count:
                return False
            hits.append(now)
            if len(self._hits) > 100_000:  # forget idle keys rather than grow forever
                for stale in [k for k, v in self._hits.items() if not v][:50_000]:
                    del self._hits[stale]
            return True

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()


# Per client address, and (sign-in) per address typed: ten tries in five minutes.
SIGN_IN = Limit(10, 300)
SIGN_IN_PER_EMAIL = Limit(10, 300)
REGISTER = Limit(10, 600)
RESET = Limit(5, 600)
SSO = Limit(120, 60)

# Invitations a payer user sends: twenty an hour.
INVITE = Limit(20, 3600)

ALL = (SIGN_IN, SIGN_IN_PER_EMAIL, REGISTER, RESET, SSO, INVITE)
