"""The hotspots app: sign-in, the shared sidebar filters and the pages each role may open.

Start it on the demo data (after ``.venv/bin/hotspots demo``)::

    HOTSPOTS_LOCAL=1 .venv/bin/streamlit run serve.py

Settings (the README's table; ``hotspots.config.resolve_settings``, as for the CLI):
``HOTSPOTS_CONFIG`` (configuration TOML, default the packaged one), ``HOTSPOTS_STORE``
(store file, default data/hotspots.sqlite), ``HOTSPOTS_GEODATA`` (geodata cache, default
geodata/cache). A store built for another area is refused, naming both areas.

Sign-in, in this order:

1. **Local mode** (``HOTSPOTS_LOCAL=1``): one analyst on their own machine; no sign-in,
   role ``analyst``. Only in local mode, ``HOTSPOTS_TEST_ROLE`` (analyst, chair, officer,
   partner) chooses another role, for tests and demonstrations.
2. **OIDC** when ``.streamlit/secrets.toml`` has an ``[auth]`` section (Streamlit's
   ``st.login``, which needs Authlib: the ``streamlit[auth]`` dependency): ``redirect_uri``
   (the app's own URL + ``/oauth2callback``), ``cookie_secret``, ``client_id``,
   ``client_secret``, ``server_metadata_url`` (the provider's
   ``/.well-known/openid-configuration``). Roles come from a ``[roles]`` table of
   ``"e-mail" = "role"`` (keys quoted), matched ignoring case against the ID token's
   ``email`` claim; an e-mail not listed, no e-mail, or ``email_verified = false`` is
   refused. The sidebar's "Sign out" also ends the session at the provider, if it
   offers an end-session endpoint. A session ends ``[signin] session_hours`` (default 12)
   after the provider signed the user in (the ID token's ``iat``).
3. **Passwords** otherwise, from a ``[passwords]`` table in the secrets written by
   ``hotspots user add NAME --role ROLE`` (Argon2 hashes, and a ``[signin]`` secret for
   the session cookie): throttled per user and per client, sessions that survive a refresh
   and end after ``[signin] session_hours``; see ``app_pages/signin.py``. Start the app
   with ``streamlit run serve.py``, which mounts the cookie's route. "Sign out" is in the
   sidebar.

Without any of these the app refuses to start and says how to configure it.

Roles: an **officer** sees the patrol map only; a **partner** sees the partner pack only
(minimised, small counts suppressed); an **analyst** or **chair** sees every page.
"""

from __future__ import annotations

import os
import string
import time

import streamlit as st

from app_pages import common, signin
from hotspots.errors import ConfigError

st.set_page_config(page_title="hotspots", layout="wide")


def _secrets_section(name: str):
    try:
        return st.secrets[name] if name in st.secrets else None
    except FileNotFoundError:  # no secrets file at all
        return None


def _plain(text: str) -> str:
    """``text`` for a Markdown body (st.error, st.caption): every punctuation character
    escaped, so an e-mail or user name is shown as typed, never as Markdown, LaTeX or
    HTML (Streamlit may still underline an e-mail address as a mailto link)."""
    return "".join("\\" + c if c in string.punctuation else c for c in text)


def _refuse(message: str) -> None:
    st.title("hotspots: sign in")
    st.error(message)
    st.button("Sign out", on_click=st.logout)


def _oidc_login() -> tuple[str, str] | None:
    if not st.user.is_logged_in:
        st.title("hotspots: sign in")
        st.button("Sign in", on_click=st.login)
        return None
    try:
        hours = signin.settings()["hours"]
    except ConfigError as exc:
        _refuse(str(exc))
        return None
    issued = st.user.get("iat")  # when the provider signed the user in (ID token claim)
    if isinstance(issued, int | float) and time.time() - issued > hours * 3600:
        st.logout()  # the session is older than [signin] session_hours: sign in again
        return None
    email = str(st.user.get("email") or "").strip()
    if not email:
        _refuse("The identity provider sent no e-mail address for this account; ask the "
                "analyst to request the `email` scope from it.")
        return None
    # False, or the string "false" that some providers send; a missing claim is trusted
    if str(st.user.get("email_verified", True)).lower() == "false":
        _refuse(f"The identity provider says {_plain(email)} is not verified; verify it "
                "there, then sign in again.")
        return None
    roles = {str(k).strip().lower(): str(v).strip().lower()
             for k, v in (_secrets_section("roles") or {}).items()}
    role = roles.get(email.lower())
    if role not in common.ROLES:
        _refuse(f"{_plain(email)} has no role in this app; ask the analyst to add it.")
        return None
    return email, role


def _mode() -> str | None:
    """How users sign in: "local", "oidc", "passwords", or None (not configured)."""
    if os.environ.get("HOTSPOTS_LOCAL") == "1":
        return "local"
    if _secrets_section("auth") is not None:
        return "oidc"
    if _secrets_section("passwords") is not None:
        return "passwords"
    return None


def sign_in() -> tuple[str, str] | None:
    """(user, role), or None after drawing the sign-in form."""
    mode = _mode()
    if mode == "local":
        want = os.environ.get("HOTSPOTS_TEST_ROLE", "analyst")
        return "local analyst", want if want in common.ROLES else "analyst"
    if mode == "oidc":
        return _oidc_login()
    if mode == "passwords":
        return signin.sign_in(_secrets_section("passwords"))
    st.error("No sign-in is configured. Add an [auth] (OIDC) or [passwords] section to "
             ".streamlit/secrets.toml, or set HOTSPOTS_LOCAL=1 for a single analyst on "
             "their own machine.")
    return None


def sidebar(user: str, role: str) -> None:
    """Period, categories and areas of the main layer (wards), kept in st.session_state
    for every page."""
    refused = common.check_area()
    if refused:
        st.error(f"This store cannot be used with this configuration: {refused}")
        st.stop()
    version = common.store_version()
    months = common.months(version) if version[1] else []
    cfg = common.config()
    with st.sidebar:
        st.caption(f"Signed in: {_plain(user)} ({role})")
        mode = _mode()
        if mode == "oidc":
            st.button("Sign out", on_click=st.logout)
        elif mode == "passwords":
            signin.keep()
            if st.button("Sign out"):
                signin.sign_out()
                st.rerun()
        if not months:
            st.warning("The store has no incidents yet.")
            return
        latest = common.latest_month(version)
        if st.session_state.get("f_month") not in months:
            st.session_state["f_month"] = latest if latest in months else months[0]
        st.selectbox("Period (month)", months, key="f_month")
        st.multiselect("Categories (none = all)", list(cfg.categories), key="f_categories",
                       format_func=cfg.label)
        names = common.area_names()
        st.multiselect(f"{common.area_label(plural=True)} (none = all)",
                       sorted(names, key=names.get), key="f_wards",
                       format_func=lambda c: names.get(c, c))


PAGES = {
    "tasking": st.Page("app_pages/tasking.py", title="Tasking", url_path="tasking"),
    "patrol": st.Page("app_pages/patrol.py", title="Patrol map", url_path="patrol"),
    "trends": st.Page("app_pages/trends.py", title="Trends", url_path="trends"),
    "data": st.Page("app_pages/data.py", title="Data", url_path="data"),
    "partner": st.Page("app_pages/partner.py", title="Partner pack", url_path="partner"),
}
BY_ROLE = {"analyst": ["tasking", "patrol", "trends", "data"],
           "chair": ["tasking", "patrol", "trends", "data"],
           "officer": ["patrol"], "partner": ["partner"]}

signed = sign_in()
if signed is None:
    st.stop()
user, role = signed
st.session_state["role"] = role
st.session_state["user"] = user
mine = [PAGES[k] for k in BY_ROLE[role]]
if len(mine) > 1:
    with st.sidebar:
        for page in mine:
            st.page_link(page)
sidebar(user, role)


def _home() -> None:
    st.switch_page(mine[0])


# A hidden default page that opens the role's first page: Streamlit serves its default
# page at "/" only, so without it a link to /tasking or /patrol says "Page not found".
home = st.Page(_home, title="hotspots", url_path="home", default=True)
st.navigation([home, *mine], position="hidden").run()
