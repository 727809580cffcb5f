"""Passwords, bearer tokens and MQTT passwords: making them and keeping only their hashes."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_PREFIX = "cc_"
# Mosquitto's PBKDF2-SHA512 password format ("$7$iterations$salt$hash", mosquitto_passwd(1)).
MOSQUITTO_SALT_BYTES = 12
MOSQUITTO_ITERATIONS = 1000


@functools.cache
def _hasher() -> PasswordHasher:
    # argon2-cffi's defaults follow RFC 9106's second recommended (low-memory) profile.
    return PasswordHasher()


def hash_password(password: str) -> str:
    """Hash a person's password with argon2id."""
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Tell whether `password` matches the argon2 hash (False for any malformed hash)."""
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def stand_in_hash() -> str:
    """An argon2 hash of a random password, to verify against when a user does not exist."""
    return hash_password(secrets.token_urlsafe(16))


def new_token() -> str:
    """A random bearer token (256 bits), shown once to its owner."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The SHA-256 of a token, as stored; enough for 256-bit random tokens (nothing to guess)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_password(nbytes: int = 18) -> str:
    """A random password for a demo user or an MQTT account."""
    return secrets.token_urlsafe(nbytes)


def mosquitto_hash(
    password: str, *, salt: bytes | None = None, iterations: int = MOSQUITTO_ITERATIONS
) -> str:
    """Hash an MQTT password in Mosquitto's `$7$` format (PBKDF2-HMAC-SHA512, 64-byte key)."""
    salt = salt if salt is not None else secrets.token_bytes(MOSQUITTO_SALT_BYTES)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def mosquitto_verify(password_hash: str, password: str) -> bool:
    """Tell whether `password` matches a Mosquitto `$7$` hash."""
    try:
        _, kind, iterations, salt, key = password_hash.split("$")
        if kind != "7":
            return False
        expected = mosquitto_hash(password, salt=base64.b64decode(salt), iterations=int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(expected.rsplit("$", 1)[1], key)
