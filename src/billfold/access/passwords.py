"""Payer passwords: argon2id (RFC 9106's second recommended parameters, as argon2-cffi
ships them), checked in constant time, rehashed on sign-in when the parameters move on."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from billfold.core.errors import FieldError

MIN_LENGTH = 10
MAX_LENGTH = 200  # argon2 takes any length; a megabyte "password" is an attack

_hasher = PasswordHasher()
# Verified when no user has the email given, so that "no such user" takes as long as
# "wrong password" and the timing tells nothing.
_DUMMY = _hasher.hash("not a password anyone has")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def problems(password: str, *, field: str = "password", email: str = "") -> list[FieldError]:
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        return [FieldError(field, f"must be at least {MIN_LENGTH} characters", "too_short")]
    if len(password) > MAX_LENGTH:
        return [FieldError(field, f"must be at most {MAX_LENGTH} characters", "too_long")]
    if email and password.strip().lower() == email.strip().lower():
        return [FieldError(field, "must not be your email address", "weak")]
    if len(set(password)) < 4:
        return [FieldError(field, "is too easy to guess: use more different characters",
                           "weak")]
    return []
