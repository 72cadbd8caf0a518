"""Password sign-in for the app: the form, the throttle, session expiry, and the session
cookie that lets a signed-in user refresh the page.

**Passwords** are Argon2 hashes in the secrets file, written by ``hotspots user add`` (see
:mod:`hotspots.auth`); an old unsalted ``password_sha256`` entry is refused, with a message.

**Throttle.** Every attempt counts against the user name and the client's address. After
``free_failures`` failures in a row (default 3) an attempt waits ``first_delay_seconds``
(default 1), doubling per failure up to ``max_delay_seconds`` (default 900); the page says
when to try again. The counts live in :data:`THROTTLE`, one object behind a lock shared by
every session of this server process (a restart forgets them).

**Sessions** end ``session_hours`` after signing in (default 12). The session is also kept in
a cookie, so that a refresh does not sign the user out: an HMAC-signed token (user, expiry,
session id; :func:`hotspots.auth.make_token`) under ``[signin] secret``. Streamlit's script
cannot set an HTTP header, so the cookie comes from this server's own route
(:data:`SET_PATH`, mounted by ``serve.py``): after a correct password the page posts a
one-time, one-minute code to it from an invisible component, and the route answers with
the cookie, ``HttpOnly`` (no script can read it) and ``SameSite=Strict`` (``Secure`` over
HTTPS). A new session reads it with ``st.context.cookies``; an expired or changed cookie,
one for a user no longer in the secrets, or one whose session was signed out, is ignored.
"Sign out" revokes the session id in this process and has :data:`CLEAR_PATH` delete the
cookie.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time

import streamlit as st
import streamlit.components.v1 as components

from hotspots import auth
from hotspots.errors import ConfigError

LOG = logging.getLogger("hotspots.app.signin")
COOKIE = "hotspots_session"
SET_PATH = "/hotspots/session"
CLEAR_PATH = "/hotspots/signout"
#: Failed sign-ins per user name and per client address, for every session of the process.
THROTTLE = auth.Throttle()
_LOCK = threading.Lock()
_PENDING: dict[str, tuple[str, int, float]] = {}  # one-time code -> (token, expiry, valid until)
_REVOKED: dict[str, float] = {}  # session id signed out -> its expiry
_WARNED: set[str] = set()  # what the log has been told once: legacy entries, routes
#: True once serve.py has mounted the cookie routes (`streamlit run serve.py`).
ROUTES_MOUNTED = False


def settings() -> dict:
    """The ``[signin]`` table of the secrets, with defaults. Raises ConfigError naming a
    key that is not a number, or a secret too short to sign with."""
    try:
        table = dict(st.secrets.get("signin", {}))
    except FileNotFoundError:
        table = {}
    numbers = {}
    for key, default in (("session_hours", auth.DEFAULT_SESSION_HOURS), ("free_failures", 3),
                         ("first_delay_seconds", 1.0), ("max_delay_seconds", 900.0)):
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"[signin] {key} in the secrets file is {value!r}; give a "
                              f"number of 0 or more (default {default:g}).")
        numbers[key] = value
    secret = table.get("secret")
    if isinstance(secret, str):
        auth.make_token("check", secret, 0)  # raises if too short
    return {"secret": secret, "hours": float(numbers["session_hours"]),
            "rule": auth.ThrottleRule(free=int(numbers["free_failures"]),
                                      first=float(numbers["first_delay_seconds"]),
                                      cap=float(numbers["max_delay_seconds"]))}


def _valid_entry(table, user: str):
    entry = table.get(user) if user else None
    if entry is None or auth.is_legacy(entry) or entry.get("role") not in auth.ROLES:
        return None
    return entry


def _legacy_notice(table) -> None:
    """Refuse old unsalted SHA-256 entries loudly: names in the log, a count on the page."""
    legacy = sorted(name for name, entry in table.items() if auth.is_legacy(entry))
    for name in set(legacy) - _WARNED:
        LOG.warning("user %s has an old unsalted SHA-256 password (password_sha256) and "
                    "cannot sign in; re-hash it with `hotspots user add %s --role ROLE`",
                    name, name)
        _WARNED.add(name)
    if legacy:
        st.warning(f"{len(legacy)} account(s) in the secrets file still have an old, unsafe "
                   "password hash (unsalted SHA-256) and cannot sign in. Administrator: set "
                   "each one's password again with `hotspots user add NAME --role ROLE` "
                   "(the names are in the app's log).")


def _start(user: str, role: str, claims: dict) -> None:
    st.session_state.update(user=user, role=role, session_expires=claims["exp"],
                            session_id=claims["sid"])
    st.session_state.pop("signed_out", None)


def _from_cookie(table, secret: str) -> tuple[str, str] | None:
    claims = auth.read_token(st.context.cookies.get(COOKIE), secret)
    if claims is None:
        return None
    with _LOCK:
        if claims["sid"] in _REVOKED:
            return None
    entry = _valid_entry(table, claims["u"])
    if entry is None:
        return None
    _start(claims["u"], entry["role"], claims)
    return claims["u"], entry["role"]


def _check(table, conf: dict, user: str, password: str) -> None:
    """One sign-in attempt: throttle, then the password. Reruns the script when right."""
    keys = [("user", user.strip().lower()), ("client", st.context.ip_address or "unknown")]
    wait = THROTTLE.attempt(keys, conf["rule"])
    if wait > 0:
        LOG.warning("sign-in for %r from %s refused: throttled for %.0f s more", user,
                    keys[1][1], wait)
        st.error("Too many failed sign-ins for this user name or from this computer. "
                 + auth.wait_message(wait, tz=st.context.timezone))
        return
    entry = table.get(user)
    ok = auth.verify_password(entry.get("password_hash") if entry else None, password)
    if not ok or _valid_entry(table, user) is None:
        LOG.info("sign-in failed for %r from %s", user, keys[1][1])
        st.error("User name or password not recognised.")
        return
    THROTTLE.succeeded(keys[0], keys[1:])
    token = auth.make_token(user, conf["secret"], conf["hours"])
    code = secrets.token_urlsafe(32)
    with _LOCK:
        now = time.time()
        for c in [c for c, (_, _, until) in _PENDING.items() if until < now]:
            del _PENDING[c]
        claims = auth.read_token(token, conf["secret"])
        _PENDING[code] = (token, claims["exp"], now + 60)
    _start(user, entry["role"], claims)
    st.session_state["cookie_code"] = code
    LOG.info("%s signed in (%s)", user, entry["role"])
    st.rerun()


def sign_in(table) -> tuple[str, str] | None:
    """(user, role) of the session, from this session, the cookie or the form; or None
    after drawing the form."""
    try:
        conf = settings()
    except ConfigError as exc:
        st.title("hotspots: sign in")
        st.error(str(exc))
        return None
    if not isinstance(conf["secret"], str):
        st.title("hotspots: sign in")
        st.error("The secrets file has [passwords] but no [signin] secret to sign sessions "
                 "with. Administrator: run `hotspots user add NAME --role ROLE` (it writes "
                 "one), or add [signin] secret = \"<64 random hex digits>\".")
        return None
    user = st.session_state.get("user")
    if user and st.session_state.get("role"):
        entry = _valid_entry(table, user)
        if st.session_state.get("session_expires", 0) <= time.time():
            sign_out(f"Your session ended after {conf['hours']:g} hours; sign in again.")
        elif entry is None or entry["role"] != st.session_state["role"]:
            sign_out("Your account was changed; sign in again.")
        else:
            return user, st.session_state["role"]
    if not st.session_state.get("signed_out"):
        found = _from_cookie(table, conf["secret"])
        if found:
            return found
    st.title("hotspots: sign in")
    if st.session_state.pop("clear_cookie", False):
        _post(CLEAR_PATH, "")
    if st.session_state.get("signin_notice"):
        st.info(st.session_state.pop("signin_notice"))
    _legacy_notice(table)
    with st.form("login"):
        name = st.text_input("User name")
        password = st.text_input("Password", type="password")
        ok = st.form_submit_button("Sign in")
    if ok:
        _check(table, conf, name, password)
    return None


def keep() -> None:
    """Once per sign-in: have the browser fetch the session cookie (an invisible component
    posting the one-time code). Call on every run of a signed-in session."""
    code = st.session_state.get("cookie_code")
    if not code:
        return
    with _LOCK:
        waiting = code in _PENDING
    if not waiting:
        st.session_state.pop("cookie_code", None)
        return
    if not ROUTES_MOUNTED:
        if "routes" not in _WARNED:
            _WARNED.add("routes")
            LOG.warning("the session cookie routes are not mounted: start the app with "
                        "`streamlit run serve.py` so that a refresh keeps users signed in")
        return
    _post(SET_PATH, code)


def _post(path: str, code: str) -> None:
    components.html(f"<script>fetch({json.dumps(path)}, {{method: 'POST', credentials: "
                    f"'same-origin', body: {json.dumps(code)}}});</script>", height=0)


def sign_out(notice: str | None = None) -> None:
    """End this session: its id is revoked for the process, the cookie deleted."""
    sid = st.session_state.get("session_id")
    if sid:
        with _LOCK:
            now = time.time()
            for s in [s for s, exp in _REVOKED.items() if exp < now]:
                del _REVOKED[s]
            _REVOKED[sid] = st.session_state.get("session_expires", now + 86400)
    for key in ("user", "role", "session_expires", "session_id", "cookie_code"):
        st.session_state.pop(key, None)
    st.session_state.update(signed_out=True, clear_cookie=True)
    if notice:
        st.session_state["signin_notice"] = notice


# --- the routes (mounted by serve.py) ------------------------------------------------------

async def _set_cookie(request):
    from starlette.responses import Response

    code = (await request.body()).decode("ascii", "replace")
    with _LOCK:
        token, exp, until = _PENDING.pop(code, (None, 0, 0.0))
    if token is None or until < time.time():
        return Response(status_code=404)
    response = Response(status_code=204)
    response.set_cookie(COOKIE, token, max_age=max(0, exp - int(time.time())), path="/",
                        httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


async def _clear_cookie(request):
    from starlette.responses import Response

    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


def routes() -> list:
    """The two cookie routes, for ``st.App(..., routes=signin.routes())``."""
    from starlette.routing import Route

    global ROUTES_MOUNTED
    ROUTES_MOUNTED = True
    return [Route(SET_PATH, _set_cookie, methods=["POST"]),
            Route(CLEAR_PATH, _clear_cookie, methods=["POST"])]
