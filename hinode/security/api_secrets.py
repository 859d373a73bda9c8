"""Hashing and signing for API authentication (stdlib only: hashlib, hmac, secrets).

- Static API tokens are random (``new_token``: 256 bits), so one SHA-256 is enough to store
  them safely: ``sha256:<hex>``. The config holds only the hash.
- User passwords are chosen by people, so they get a slow, salted hash:
  ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``.
- Tokens issued by ``/token`` and the board login are ``hn1.<payload>.<signature>``: the payload
  (subject, role, expiry and, when granted explicitly, scopes) is base64url JSON, the signature
  HMAC-SHA256 with a server secret. ``verify_signed_token`` returns ``scopes: None`` for a token
  without the claim (issued before scopes existed, or to a principal with the role's defaults).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

TOKEN_PREFIX = "hn1"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class BadToken(ValueError):
    """Carries only a reason ('malformed', 'bad signature', 'expired'), never the token."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token).encode(), stored_hash.strip().lower().encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def is_password_hash(text: str) -> bool:
    parts = text.split("$")
    return len(parts) == 6 and parts[0] == "scrypt" and all(p.isdigit() for p in parts[1:4])


def verify_password(password: str, stored: str) -> bool:
    if not is_password_hash(stored):
        return False
    _, n, r, p, salt, digest = stored.split("$")
    try:
        actual = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                                dklen=len(_unb64(digest)), maxmem=256 * 1024 * 1024)
    except ValueError:
        return False
    return hmac.compare_digest(actual, _unb64(digest))


def sign_token(secret: bytes, subject: str, role: str, ttl_s: int, now: float | None = None,
               scopes: list[str] | tuple[str, ...] | None = None) -> str:
    """``scopes``: None = the role's defaults (no claim: such a token reads like one issued before
    scopes existed); a list = exactly those scopes (claim ``scopes``)."""
    payload = {"sub": subject, "role": role, "exp": int((time.time() if now is None else now) + ttl_s)}
    if scopes is not None:
        payload["scopes"] = sorted(set(scopes))
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    signature = _b64(hmac.new(secret, f"{TOKEN_PREFIX}.{body}".encode(), hashlib.sha256).digest())
    return f"{TOKEN_PREFIX}.{body}.{signature}"


def verify_signed_token(secret: bytes, token: str, now: float | None = None) -> dict:
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise BadToken("malformed")
    expected = _b64(hmac.new(secret, f"{TOKEN_PREFIX}.{parts[1]}".encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.encode(), parts[2].encode()):
        raise BadToken("bad signature")
    try:
        payload = json.loads(_unb64(parts[1]))
        expiry, subject, role = int(payload["exp"]), str(payload["sub"]), str(payload["role"])
        scopes = payload.get("scopes")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadToken("malformed") from None
    if scopes is not None and not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
        raise BadToken("malformed")
    if expiry <= (time.time() if now is None else now):
        raise BadToken("expired")
    return {"sub": subject, "role": role, "exp": expiry, "scopes": scopes}
