"""Encryption of batch pseudonym maps at rest: AES-256-GCM under a key derived with scrypt.

The maps of a batch must outlive the request (results come back hours later), so they are
the one place where Guard keeps personal data. They are never written in the clear:

- the key is ``GUARD_BATCH_KEY`` (or the first line of the file named by
  ``GUARD_BATCH_KEY_FILE``): any string of at least 16 characters, a passphrase or the output
  of ``guard batch keygen``;
- each file gets a random 16-byte salt; scrypt (n=2**15, r=8, p=1: memory-hard, so guessing a
  weak passphrase stays expensive) turns key + salt into a 256-bit AES key;
- AES-GCM with a random 96-bit nonce encrypts *and authenticates*: a wrong key, a different
  file or a single altered byte fails the tag check, and nothing half-decrypted is ever used.
  The header (format, salt) is bound to the ciphertext as associated data.

Why not Fernet: it needs a raw 32-byte key and has no key derivation, so passphrases would
need one anyway; AES-GCM + scrypt from the same well-kept library (``cryptography``) covers
both kinds of key with one format.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from guard.errors import ConfigError, GuardError

MAGIC = b"GUARD-BATCH-MAPS/1\n"
_SALT_BYTES = 16
_NONCE_BYTES = 12
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
MIN_KEY_CHARS = 16

KEY_ENV = "GUARD_BATCH_KEY"
KEY_FILE_ENV = "GUARD_BATCH_KEY_FILE"


class BatchKeyError(ConfigError):
    """No usable key for batch maps (missing, too short, unreadable key file)."""


class MapsFileError(GuardError):
    """A maps file that cannot be opened: wrong key, altered, or not a Guard maps file."""


def batch_key(env: Mapping[str, str] | None = None) -> str:
    """The configured batch key; raises :class:`BatchKeyError` saying what to set."""
    env = os.environ if env is None else env
    key = env.get(KEY_ENV) or ""
    path = env.get(KEY_FILE_ENV) or ""
    if not key and path:
        try:
            key = Path(path).read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError) as exc:
            raise BatchKeyError(f"{KEY_FILE_ENV}={path} could not be read as a key file "
                                f"({type(exc).__name__}).") from None
    if not key:
        raise BatchKeyError(
            f"No batch key: set {KEY_ENV} (or {KEY_FILE_ENV} to a file holding it). The "
            "pseudonym maps of a batch hold personal data and are only ever written "
            "encrypted; `guard batch keygen` prints a new random key.")
    if len(key) < MIN_KEY_CHARS:
        raise BatchKeyError(f"The batch key is shorter than {MIN_KEY_CHARS} characters; use a "
                            "longer passphrase or `guard batch keygen`.")
    return key


def optional_batch_key(env: Mapping[str, str] | None = None) -> str | None:
    """The batch key when one is configured (checked), else ``None``."""
    env = os.environ if env is None else env
    return batch_key(env) if env.get(KEY_ENV) or env.get(KEY_FILE_ENV) else None


def _derive(key: str, salt: bytes) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return kdf.derive(key.encode("utf-8"))


def encrypt(plaintext: bytes, key: str) -> bytes:
    """``MAGIC + salt + nonce + AES-GCM(ciphertext || tag)``."""
    salt, nonce = os.urandom(_SALT_BYTES), os.urandom(_NONCE_BYTES)
    header = MAGIC + salt
    return header + nonce + AESGCM(_derive(key, salt)).encrypt(nonce, plaintext, header)


def decrypt(data: bytes, key: str, *, source: str = "the maps file") -> bytes:
    """The plaintext, or :class:`MapsFileError` (never a partial result)."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _SALT_BYTES + _NONCE_BYTES + 16:
        raise MapsFileError(f"{source} is not a Guard batch maps file.")
    salt_end = len(MAGIC) + _SALT_BYTES
    header, nonce = data[:salt_end], data[salt_end:salt_end + _NONCE_BYTES]
    try:
        return AESGCM(_derive(key, data[len(MAGIC):salt_end])).decrypt(
            nonce, data[salt_end + _NONCE_BYTES:], header)
    except InvalidTag:
        raise MapsFileError(
            f"{source} could not be decrypted: the batch key ({KEY_ENV}) is not the one it "
            "was written with, or the file was altered.") from None
