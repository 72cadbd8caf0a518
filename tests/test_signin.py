"""Password sign-in: Argon2 hashes, signed session tokens, the throttle, the secrets file
written by `hotspots user add`, and the app's sign-in form through AppTest (expiry,
throttling across sessions, old SHA-256 entries refused). The browser side (the cookie
through a refresh) is tests/test_app_signin_browser.py."""

from __future__ import annotations

import io
import logging
import stat
import threading
import time
import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hotspots import auth
from hotspots.cli import main
from hotspots.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
SECRET = "0123456789abcdef" * 4


# --- hashes and tokens -------------------------------------------------------------------

@pytest.mark.slow
def test_passwords_are_salted_argon2_hashes():
    a, b = auth.hash_password("s3cret"), auth.hash_password("s3cret")
    assert a.startswith("$argon2id$") and a != b  # a random salt each time
    assert auth.verify_password(a, "s3cret") and auth.verify_password(b, "s3cret")
    assert not auth.verify_password(a, "s3cret ") and not auth.verify_password(a, "")
    for bad in (None, "", "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"):
        assert not auth.verify_password(bad, "s3cret")
    assert auth.is_legacy({"password_sha256": "ab", "role": "chair"})
    assert not auth.is_legacy({"password_hash": a, "role": "chair"})


def test_session_tokens_are_signed_and_expire():
    now = 1_800_000_000.0
    token = auth.make_token("pat", SECRET, hours=12, now=now)
    claims = auth.read_token(token, SECRET, now=now + 3600)
    assert claims["u"] == "pat" and claims["exp"] == now + 12 * 3600 and claims["sid"]
    assert auth.read_token(token, SECRET, now=now + 12 * 3600) is None  # expired
    assert auth.read_token(token, "f" * 64, now=now) is None  # another server's secret
    body, sig = token.split(".")
    forged = auth._b64(auth._unb64(body).replace(b'"pat"', b'"sam"'))
    assert auth.read_token(forged + "." + sig, SECRET, now=now) is None  # changed user
    longer = auth._b64(auth._unb64(body).replace(b'"exp":', b'"exp":9'))
    assert auth.read_token(longer + "." + sig, SECRET, now=now) is None  # changed expiry
    for junk in (None, "", "abc", "a.b.c", token + "x", "." + sig):
        assert auth.read_token(junk, SECRET, now=now) is None
    assert auth.make_token("pat", SECRET, 12) != auth.make_token("pat", SECRET, 12)
    with pytest.raises(ConfigError, match="shorter than 32"):
        auth.make_token("pat", "short", 12)


# --- the throttle ------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.t = 1_000.0

    def __call__(self):
        return self.t


def test_throttle_delays_grow_per_user_and_per_client():
    clock = Clock()
    th = auth.Throttle(clock=clock)
    rule = auth.ThrottleRule(free=3, first=1.0, cap=8.0)
    keys = [("user", "pat"), ("client", "10.0.0.1")]
    assert [th.attempt(keys, rule) for _ in range(3)] == [0, 0, 0]  # three free failures
    waits = []
    for _ in range(6):
        wait = th.attempt(keys, rule)
        assert wait > 0 and th.attempt(keys, rule) == wait  # refused; not counted
        waits.append(wait)
        clock.t += wait
        assert th.attempt(keys, rule) == 0  # after the wait, one more try (it fails)
    assert waits == [1, 2, 4, 8, 8, 8]  # doubling, up to the cap
    # the same user from another computer waits too; another user from this one too
    assert th.attempt([("user", "pat"), ("client", "10.0.0.2")], rule) == 8
    assert th.attempt([("user", "sam"), ("client", "10.0.0.1")], rule) == 8
    # a user guessing at other names is caught by the client key alone
    other = auth.Throttle(clock=clock)
    for i in range(3):
        assert other.attempt([("user", f"u{i}"), ("client", "10.0.0.9")], rule) == 0
    assert other.attempt([("user", "u9"), ("client", "10.0.0.9")], rule) == 1
    # failures are forgotten an hour after the last one
    clock.t += 3601
    assert th.attempt(keys, rule) == 0


def test_twenty_guesses_in_eleven_seconds_are_mostly_refused():
    """The review's attack: 20 wrong passwords in 11 s all got checked. With the default
    rule only 6 are: three free, then after waits of 1, 2 and 4 s."""
    clock = Clock()
    th = auth.Throttle(clock=clock)
    checked = []
    for i in range(20):
        clock.t = 1_000.0 + i * 11 / 19
        checked.append(th.attempt([("user", "pat"), ("client", "10.0.0.1")],
                                  auth.ThrottleRule()) == 0)
    assert sum(checked) == 6 and checked[:3] == [True] * 3


def test_a_right_password_clears_the_user_but_not_the_client():
    clock = Clock()
    th = auth.Throttle(clock=clock)
    rule = auth.ThrottleRule(free=3, first=1.0, cap=8.0)
    mine, victim = ("user", "mine"), ("user", "victim")
    client = ("client", "10.0.0.1")
    th.attempt([victim, client], rule)
    th.attempt([victim, client], rule)
    th.attempt([mine, client], rule)
    th.succeeded(mine, [client])  # the attacker's own account: right password
    assert th.attempt([victim, client], rule) == 0  # third failure of the victim's name
    assert th.attempt([victim, client], rule) == 1  # and now both keys are throttled


def test_throttle_holds_under_concurrent_attempts():
    """20 sessions trying at once: the attempt is counted before the password is checked,
    so exactly the free ones get through."""
    th = auth.Throttle()
    rule = auth.ThrottleRule(free=3, first=60.0)
    start = threading.Barrier(20)
    results = []

    def one():
        start.wait()
        results.append(th.attempt([("user", "pat"), ("client", "x")], rule))

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results)[:4] == [0, 0, 0, pytest.approx(60, abs=1)]
    assert sum(r == 0 for r in results) == 3


def test_wait_message_says_when_in_the_browsers_time_zone():
    now = time.mktime((2026, 1, 5, 9, 0, 0, 0, 0, -1))
    assert auth.wait_message(1.2, now) == "Try again in 2 seconds (at 09:00:02)."
    assert auth.wait_message(900, now) == "Try again in 15 minutes (at 09:15:00)."
    summer = 1_783_000_000  # 2026-07-02 13:46:40 UTC
    assert auth.wait_message(60, summer, tz="Europe/London").endswith("(at 14:47:40).")
    assert auth.wait_message(60, summer, tz="UTC").endswith("(at 13:47:40).")
    assert auth.wait_message(60, summer, tz="Not/AZone") == auth.wait_message(60, summer)


# --- the secrets file --------------------------------------------------------------------

@pytest.mark.slow
def test_add_user_creates_and_edits_the_secrets_file(tmp_path):
    path = tmp_path / ".streamlit" / "secrets.toml"
    assert auth.add_user(path, "pat", "officer", "first pass")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = tomllib.loads(path.read_text())
    assert auth.verify_password(data["passwords"]["pat"]["password_hash"], "first pass")
    assert data["passwords"]["pat"]["role"] == "officer"
    secret = data["signin"]["secret"]
    assert len(secret) == 64 and data["signin"]["session_hours"] == 12
    # an old SHA-256 entry and a comment, added by hand; then two more users
    with path.open("a") as f:
        f.write('\n# the chair\n[passwords.sam]\npassword_sha256 = "ab12"\nrole = "chair"\n')
    assert auth.add_user(path, "alex@example.org", "analyst", "pw2")
    assert not auth.add_user(path, "sam", "chair", "new pass")  # re-hashed, not added
    assert not auth.add_user(path, "pat", "partner", "second pass")
    text = path.read_text()
    data = tomllib.loads(text)
    assert "# the chair" in text and "first pass" not in text and "password_sha256" not in text
    assert data["signin"]["secret"] == secret  # kept
    assert set(data["passwords"]) == {"pat", "sam", "alex@example.org"}
    assert auth.verify_password(data["passwords"]["sam"]["password_hash"], "new pass")
    assert auth.verify_password(data["passwords"]["pat"]["password_hash"], "second pass")
    assert data["passwords"]["pat"]["role"] == "partner"
    for name, role, message in (("pat", "admin", "role 'admin'"),
                                ('x"]\n[evil', "chair", "user name"),
                                ("pat", "chair", "password is empty")):
        with pytest.raises(ConfigError, match=message):
            auth.add_user(path, name, role, "" if "empty" in message else "pw")
    assert path.read_text() == text  # nothing written


@pytest.mark.slow
def test_cli_user_add_reads_stdin_or_the_terminal(tmp_path, monkeypatch, capsys):
    path = tmp_path / "secrets.toml"
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert main(["user", "add", "pat", "--role", "officer", "--secrets", str(path),
                 "--password-stdin"]) == 0
    out = capsys.readouterr()
    assert "added user pat (officer)" in out.out and "correct horse" not in out.out + out.err
    entry = tomllib.loads(path.read_text())["passwords"]["pat"]
    assert auth.verify_password(entry["password_hash"], "correct horse")
    # no terminal and no --password-stdin: refused, nothing written
    monkeypatch.setattr("sys.stdin", io.StringIO("x\n"))
    assert main(["user", "add", "sam", "--role", "chair", "--secrets", str(path)]) == 1
    assert "--password-stdin" in capsys.readouterr().err
    # at a terminal: typed twice, without echo; two different passwords write nothing
    tty = io.StringIO()
    tty.isatty = lambda: True
    monkeypatch.setattr("sys.stdin", tty)
    typed = iter(["one", "two", "same", "same"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(typed))
    assert main(["user", "add", "sam", "--role", "chair", "--secrets", str(path)]) == 1
    assert "differ" in capsys.readouterr().err
    assert "sam" not in tomllib.loads(path.read_text())["passwords"]
    with path.open("a") as f:
        f.write('\n[passwords.old]\npassword_sha256 = "ab12"\nrole = "chair"\n')
    assert main(["user", "add", "sam", "--role", "chair", "--secrets", str(path),
                 "--json"]) == 0
    out = capsys.readouterr()
    assert '"new": true' in out.out
    assert "note: cannot sign in until given a new password (old unsalted SHA-256 entry): " \
        "old;" in out.err
    entry = tomllib.loads(path.read_text())["passwords"]["sam"]
    assert auth.verify_password(entry["password_hash"], "same")


# --- the app -----------------------------------------------------------------------------

@pytest.fixture
def app(tmp_path, cache, monkeypatch):
    """An AppTest factory for the password sign-in (no store: the sidebar says it is empty),
    with a fresh throttle on a clock that moves only when a test moves it (``app.clock``);
    keyword arguments go to the [signin] table."""
    from app_pages import signin

    monkeypatch.delenv("HOTSPOTS_LOCAL", raising=False)
    monkeypatch.delenv("HOTSPOTS_TEST_ROLE", raising=False)
    monkeypatch.setenv("HOTSPOTS_STORE", str(tmp_path / "none.sqlite"))
    monkeypatch.setenv("HOTSPOTS_GEODATA", str(cache))
    signin.THROTTLE.reset()
    signin._WARNED.clear()
    monkeypatch.setattr(signin.THROTTLE, "clock", Clock())
    users = {"pat": {"password_hash": auth.hash_password("s3cret"), "role": "officer"},
             "old": {"password_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6"
                                        "c15b0f00a08", "role": "chair"}}

    def start(**signin_table) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=60)
        at.secrets["passwords"] = users
        at.secrets["signin"] = {"secret": SECRET} | signin_table
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    start.clock = signin.THROTTLE.clock
    yield start
    signin.THROTTLE.reset()


def _try(at: AppTest, user: str, password: str) -> AppTest:
    at.text_input[0].input(user)
    at.text_input[1].input(password)
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _signed_in(at: AppTest) -> str:
    """The sidebar's "Signed in: user (role)", as shown (without Markdown escapes)."""
    return " ".join(c.value.replace("\\", "") for c in at.sidebar.caption
                    if c.value.startswith("Signed in"))


@pytest.mark.slow
def test_password_sign_in_and_sign_out(app):
    at = app()
    assert at.title[0].value == "hotspots: sign in" and not _signed_in(at)
    assert "not recognised" in _try(at, "pat", "wrong").error[0].value
    assert "not recognised" in _try(at, "nobody", "s3cret").error[0].value
    _try(at, "pat", "s3cret")
    assert _signed_in(at) == "Signed in: pat (officer)"
    assert at.session_state["user"] == "pat"
    assert at.session_state["session_expires"] == pytest.approx(time.time() + 12 * 3600, abs=60)
    at.run()  # another run of the session: still signed in
    assert _signed_in(at) == "Signed in: pat (officer)"
    at.sidebar.button[0].click().run()  # Sign out
    assert at.title[0].value == "hotspots: sign in" and not _signed_in(at)


@pytest.mark.slow
def test_session_expires(app):
    at = _try(app(session_hours=2), "pat", "s3cret")
    assert at.session_state["session_expires"] == pytest.approx(time.time() + 7200, abs=60)
    at.session_state["session_expires"] = time.time() - 1  # two hours later
    at.run()
    assert at.title[0].value == "hotspots: sign in" and not _signed_in(at)
    assert "session ended after 2 hours" in at.info[0].value


@pytest.mark.slow
def test_wrong_passwords_are_throttled_across_sessions(app):
    at = app(first_delay_seconds=30)
    for _ in range(3):
        assert "not recognised" in _try(at, "pat", "guess").error[0].value
    # the fourth attempt is refused before the password is looked at, even the right one
    refused = _try(at, "pat", "s3cret").error[0].value
    assert "Too many failed sign-ins" in refused and "Try again in 30 seconds" in refused
    assert not _signed_in(at)
    # another browser session of the same server process is throttled too
    other = _try(app(first_delay_seconds=30), "pat", "s3cret")
    assert "Too many failed sign-ins" in other.error[0].value and not _signed_in(other)


@pytest.mark.slow
def test_right_password_after_the_delay(app):
    clock = app.clock
    at = app(first_delay_seconds=5)
    for _ in range(3):
        _try(at, "pat", "guess")
    clock.t += 4.9
    assert "Too many" in _try(at, "pat", "s3cret").error[0].value
    clock.t += 0.2
    assert _signed_in(_try(at, "pat", "s3cret")) == "Signed in: pat (officer)"


def test_old_sha256_entries_are_refused_with_the_fix(app, caplog):
    with caplog.at_level(logging.WARNING, logger="hotspots.app.signin"):
        at = app()
    notice = at.warning[0].value
    assert "1 account(s)" in notice and "hotspots user add NAME --role ROLE" in notice
    assert "old" not in notice.split()  # no user names on a page anyone can open
    assert any("user old has an old unsalted SHA-256" in r.getMessage() for r in caplog.records)
    assert "not recognised" in _try(at, "old", "test").error[0].value  # sha256("test")
    assert not _signed_in(at)


def test_a_missing_or_bad_signin_table_says_what_to_fix(app):
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["passwords"] = {"pat": {"password_hash": "$argon2id$x", "role": "officer"}}
    at.run()
    assert "no [signin] secret" in at.error[0].value
    assert "hotspots user add" in at.error[0].value and not at.text_input
    for table, message in (({"secret": "short"}, "shorter than 32"),
                           ({"secret": SECRET, "session_hours": "12"},
                            "[signin] session_hours in the secrets file is '12'")):
        at.secrets["signin"] = table
        at.run()
        assert not at.exception and message in at.error[0].value and not at.text_input


def test_oidc_sessions_expire_too(app, monkeypatch):
    """Single sign-on: st.login's cookie lasts 30 days; the app ends the session
    session_hours after the provider signed the user in (the ID token's iat)."""
    def oidc(iat: float) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=60)
        at.secrets["auth"] = {"redirect_uri": "http://127.0.0.1:1/oauth2callback",
                              "cookie_secret": SECRET, "client_id": "x", "client_secret": "y",
                              "server_metadata_url": "http://127.0.0.1:1/.well-known/x"}
        at.secrets["roles"] = {"officer@example.org": "officer"}
        at.secrets["signin"] = {"session_hours": 8}
        at.user = {"email": "officer@example.org", "is_logged_in": True, "iat": iat}
        return at.run()

    at = oidc(time.time() - 7.9 * 3600)
    assert _signed_in(at) == "Signed in: officer@example.org (officer)"
    at = oidc(time.time() - 8.1 * 3600)
    assert not at.exception and not _signed_in(at)
    assert at.user.get("is_logged_in") is False  # st.logout: the identity cookie goes
    at.run()
    assert at.title[0].value == "hotspots: sign in" and not _signed_in(at)


@pytest.mark.slow
def test_uploads_are_removed_after_loading(tmp_path, cache, monkeypatch):
    """The Data page writes uploads to a folder of their own while they load and removes
    it afterwards: after a good load and after a file that is not an export."""
    from app_pages import common

    from .conftest import SHARED

    monkeypatch.setenv("HOTSPOTS_LOCAL", "1")
    monkeypatch.delenv("HOTSPOTS_TEST_ROLE", raising=False)
    monkeypatch.setenv("HOTSPOTS_STORE", str(tmp_path / "d" / "hotspots.sqlite"))
    monkeypatch.setenv("HOTSPOTS_GEODATA", str(cache))
    monkeypatch.setattr(common, "WORK", tmp_path / "work" / "hotspots-app")
    common.WORK.mkdir(parents=True)
    seen = []
    real = common.jobs.ingest_files
    monkeypatch.setattr(common.jobs, "ingest_files",
                        lambda paths, **kw: seen.extend(paths) or real(paths, **kw))
    dry = common.jobs.preview_files
    monkeypatch.setattr(common.jobs, "preview_files",
                        lambda paths, **kw: seen.extend(paths) or dry(paths, **kw))
    month = SHARED / "policeuk" / "2024-08-metropolitan-street_tower-hamlets_burglary-only.csv"
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app_pages/data.py").run()
    for name, content, check in (
            (month.name, month.read_bytes(),
             lambda a: next(d.value for d in a.dataframe if "accepted" in d.value.columns)
             ["accepted"][0] > 0),
            ("not-an-export.csv", b"\x00\x01garbage;;;\n\xff\xfe", lambda a: a.error)):
        at.file_uploader(key="uploads").set_value((name, content, "text/csv")).run()
        at.button(key="check").click().run()
        assert seen[-1].name == name and not seen[-1].exists()  # checked, then removed
        if not at.error:
            at.button(key="load").click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert check(at), name
        assert seen[-1].name == name and not seen[-1].exists()
        assert not list((tmp_path / "work").glob("upload-*"))


def test_secrets_file_is_git_ignored_and_the_example_is_not():
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    assert ignored(".streamlit/secrets.toml") and ignored(".streamlit/secrets.toml.tmp")
    assert not ignored(".streamlit/secrets.example.toml")
    example = (ROOT / ".streamlit" / "secrets.example.toml").read_text()
    assert tomllib.loads(example) == {}  # all commented out: a template, no secret in it
    assert "hotspots user add" in example and "session_hours" in example
