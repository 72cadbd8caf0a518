"""Sign-in for the app: password hashes, the secrets file's user entries, signed session
tokens and the sign-in throttle. No Streamlit here: the app (``app_pages/signin.py``) and
``hotspots user add`` both use it.

The secrets file (``.streamlit/secrets.toml``, never committed) holds::

    [signin]
    secret = "<64 hex digits>"     # signs session cookies; written by `hotspots user add`
    session_hours = 12             # a session ends this long after signing in

    [passwords."alice"]
    password_hash = "$argon2id$..."  # written by `hotspots user add`, never by hand
    role = "chair"

Passwords are hashed with Argon2id (argon2-cffi's defaults: salted, memory-hard). An entry
that still has the old ``password_sha256`` (unsalted SHA-256) is refused, never accepted:
such a hash is cracked offline in seconds, and accepting it "once" would mean the app
rewriting its own secrets file. The app says so in its log and on the sign-in page, and the
fix is one command: ``hotspots user add NAME --role ROLE``.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .errors import ConfigError

#: The app's roles: an officer sees the patrol map only, a partner the partner pack only,
#: an analyst or chair every page.
ROLES = ("analyst", "chair", "officer", "partner")
DEFAULT_SECRETS = Path(".streamlit") / "secrets.toml"
DEFAULT_SESSION_HOURS = 12.0
#: User names: letters, digits and . _ @ - (an e-mail address is fine), up to 64 characters.
USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")

_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user name is unknown, so that an unknown name takes as
    long as a wrong password and the timing does not tell which names exist."""
    return _HASHER.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` with a random salt, as argon2-cffi encodes it."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches ``password_hash``; always takes one Argon2 verification,
    also for a missing or malformed hash."""
    try:
        return _HASHER.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def is_legacy(entry) -> bool:
    """An entry with the old unsalted ``password_sha256`` and no Argon2 ``password_hash``."""
    return "password_sha256" in entry and "password_hash" not in entry


def legacy_users(path: str | Path) -> list[str]:
    """The users of the secrets file at ``path`` who still have an old SHA-256 entry."""
    users = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("passwords", {})
    return sorted(name for name, entry in users.items() if is_legacy(entry))


# --- session tokens ---------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(user: str, secret: str, hours: float, now: float | None = None) -> str:
    """A session token for ``user``: its name, expiry and a random id, signed with
    HMAC-SHA256 under ``secret``. Nothing in it is secret; it cannot be forged or changed
    without the secret."""
    now = time.time() if now is None else now
    body = _b64(json.dumps({"u": user, "exp": int(now + hours * 3600),
                            "sid": secrets.token_hex(8)}, separators=(",", ":")).encode())
    return body + "." + _b64(hmac.new(_key(secret), body.encode(), hashlib.sha256).digest())


def read_token(token: str | None, secret: str,
               now: float | None = None) -> dict | None:
    """The token's claims ``{"u": user, "exp": unix time, "sid": id}``, or None when it is
    missing, malformed, signed with another secret, changed, or expired."""
    if not token or token.count(".") != 1:
        return None
    body, sig = token.split(".")
    want = _b64(hmac.new(_key(secret), body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(sig, want):
        return None
    try:
        claims = json.loads(_unb64(body))
    except ValueError:
        return None
    now = time.time() if now is None else now
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int) \
            or claims["exp"] <= now or not isinstance(claims.get("u"), str):
        return None
    return claims


def _key(secret: str) -> bytes:
    if len(secret) < 32:
        raise ConfigError("[signin] secret in the secrets file is shorter than 32 "
                          "characters; run `hotspots user add` to write a new one, or put "
                          "64 random hex digits there.")
    return secret.encode()


# --- throttle ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ThrottleRule:
    """After ``free`` failures in a row, each further attempt waits ``first`` seconds,
    doubling per failure up to ``cap``: with the defaults 1, 2, 4 ... 512, then 900 s.
    A key's failures are forgotten ``forget`` seconds after its last one."""

    free: int = 3
    first: float = 1.0
    cap: float = 900.0
    forget: float = 3600.0

    def delay(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return min(self.first * 2.0 ** min(failures - self.free, 60), self.cap)


@dataclass
class Throttle:
    """Failed sign-ins per key (("user", name) and ("client", address)), shared by every
    session of one server process behind one lock.

    :meth:`attempt` counts an attempt as a failure before the password is checked, so that
    concurrent attempts cannot slip past the count; :meth:`succeeded` then takes it back.
    """

    clock: Callable[[], float] = time.time
    _failures: dict = field(default_factory=dict)  # key -> (count, time of last failure)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, keys, rule: ThrottleRule) -> float:
        """0 and the attempt is counted, or the seconds until the keys may try again (the
        attempt is refused and not counted)."""
        with self._lock:
            now = self.clock()
            self._prune(now, rule)
            wait = max((last + rule.delay(n) - now
                        for n, last in (self._failures.get(k, (0, now)) for k in keys)),
                       default=0.0)
            if wait > 0:
                return wait
            for k in keys:
                n, _ = self._failures.get(k, (0, now))
                self._failures[k] = (n + 1, now)
            return 0.0

    def succeeded(self, user_key, other_keys=()) -> None:
        """The attempt was right: the user's failures are cleared; the client's counted
        attempt is taken back (its earlier failures stay, so a valid account of one's own
        does not reset a client guessing at others)."""
        with self._lock:
            self._failures.pop(user_key, None)
            for k in other_keys:
                n, last = self._failures.get(k, (1, 0.0))
                if n <= 1:
                    self._failures.pop(k, None)
                else:
                    self._failures[k] = (n - 1, last)

    def reset(self) -> None:
        """Forget every failure (tests; an administrator restarting the app does the same)."""
        with self._lock:
            self._failures.clear()

    def _prune(self, now: float, rule: ThrottleRule) -> None:
        stale = [k for k, (n, last) in self._failures.items()
                 if now - last > max(rule.forget, rule.delay(n))]
        for k in stale:
            del self._failures[k]


def wait_message(seconds: float, now: float | None = None, tz: str | None = None) -> str:
    """'Try again in N seconds (at HH:MM:SS).' for a lockout of ``seconds``; the clock time
    in the time zone ``tz`` (the browser's, an IANA name) if given, else the server's."""
    now = time.time() if now is None else now
    n = math.ceil(seconds)
    try:
        zone = ZoneInfo(tz) if tz else None
    except (ValueError, ZoneInfoNotFoundError):
        zone = None
    at = dt.datetime.fromtimestamp(now + n, zone).strftime("%H:%M:%S")
    span = f"{n} second{'s' if n != 1 else ''}" if n < 120 else f"{math.ceil(n / 60)} minutes"
    return f"Try again in {span} (at {at})."


# --- the secrets file ------------------------------------------------------------------

def add_user(path: str | Path, name: str, role: str, password: str) -> bool:
    """Write ``[passwords."name"]`` with an Argon2 hash of ``password`` and ``role`` to
    the secrets file at ``path``, creating it (readable by its owner only) if absent and
    adding a ``[signin]`` secret if it has none. An existing entry for ``name`` is replaced;
    every other line is kept as it was. Returns True if the user was new."""
    path = Path(path)
    if not USER_NAME.fullmatch(name):
        raise ConfigError(f"user name {name!r}: use letters, digits and . _ @ - only "
                          "(at most 64 characters).")
    if role not in ROLES:
        raise ConfigError(f"role {role!r}: use one of {', '.join(ROLES)}.")
    if not password:
        raise ConfigError("the password is empty; give one.")
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix it by hand first.") from exc
    users = before.get("passwords", {})
    entry = (f'[passwords."{name}"]\npassword_hash = "{hash_password(password)}"\n'
             f'role = "{role}"\n')
    lines = text.splitlines(keepends=True)
    header = re.compile(r'\s*\[\s*passwords\s*\.\s*("' + re.escape(name) + r'"|'
                        + re.escape(name) + r"|'" + re.escape(name) + r"')\s*\]\s*(#.*)?$")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if name in users and start is None:
        raise ConfigError(f'{path}: the entry for {name} is not a [passwords."{name}"] '
                          "table; delete it by hand, then run this again.")
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines += (["\n"] if lines else []) + [entry]
    else:
        end = next((i for i in range(start + 1, len(lines))
                    if re.match(r"\s*\[", lines[i])), len(lines))
        lines[start:end] = [entry, "\n"] if end < len(lines) else [entry]
    if not isinstance(before.get("signin", {}).get("secret"), str):
        if "signin" in before:
            raise ConfigError(f"{path}: [signin] has no secret; add the line secret = "
                              f'"{secrets.token_hex(32)}" to it (a new random value).')
        lines += ["\n[signin]\n", f'secret = "{secrets.token_hex(32)}"\n',
                  f"session_hours = {DEFAULT_SESSION_HOURS:g}\n"]
    new = "".join(lines)
    after = tomllib.loads(new)  # never write a file the app cannot read
    assert after["passwords"][name]["role"] == role
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(new)
    os.replace(tmp, path)
    return name not in users
