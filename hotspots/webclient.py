"""HTTP with manners for the official services (police.uk, the ONS portal, Nomis): a
request rate limit, retries with back-off on 429 and 5xx (``Retry-After`` honoured), clear
errors for web pages and cut-short JSON, and files written whole or not at all.
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FetchError

USER_AGENT = "hotspots (community safety partnership hotspot analysis)"


@dataclass
class Client:
    """HTTP with manners: at most ``rate_per_s`` requests a second, 429/5xx retried
    ``retries`` times with back-off ``backoff_s * 2**attempt`` seconds (or the answer's
    ``Retry-After``, at most ``max_wait_s``)."""

    rate_per_s: float = 15.0
    retries: int = 5
    backoff_s: float = 1.0
    max_wait_s: float = 60.0
    timeout_s: float = 60.0
    requests: int = 0
    _next_at: float = field(default=0.0, repr=False)

    def _turn(self) -> None:
        now = time.monotonic()
        if self._next_at > now:
            time.sleep(self._next_at - now)
        self._next_at = max(now, self._next_at) + 1.0 / self.rate_per_s

    def request(self, url: str, *, data: bytes | None = None, what: str,
                accept: tuple[int, ...] = ()) -> tuple[int, bytes, str]:
        """``(status, body, content type)``; statuses in ``accept`` are answers too.

        Raises
        ------
        FetchError
            any other 4xx, or 429/5xx/network failures still failing after the retries.
        """
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json, text/csv, */*"}
        if data is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in range(self.retries + 1):
            self._turn()
            self.requests += 1
            req = urllib.request.Request(url, data=data, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    return resp.status, resp.read(), resp.headers.get("Content-Type", "")
            except urllib.error.HTTPError as exc:
                body = exc.read()
                if exc.code in accept:
                    return exc.code, body, exc.headers.get("Content-Type", "")
                if (exc.code == 429 or exc.code >= 500) and attempt < self.retries:
                    self._back_off(attempt, exc.headers.get("Retry-After"))
                    continue
                raise FetchError(f"{what}: {short_url(url)} answered HTTP {exc.code} "
                                 f"{exc.reason}{_after(attempt)}. {_advice(exc.code)}") from exc
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                # refused, reset, timed out, or the answer cut short (IncompleteRead)
                if attempt < self.retries:
                    self._back_off(attempt, None)
                    continue
                reason = getattr(exc, "reason", exc)
                raise FetchError(f"{what}: {short_url(url)} could not be reached ({reason})"
                                 f"{_after(attempt)}. Check the network, or the address "
                                 "given.") from exc
        raise AssertionError("unreachable")

    def _back_off(self, attempt: int, retry_after: str | None) -> None:
        wait = self.backoff_s * 2 ** attempt
        if retry_after and retry_after.strip().isdigit():
            wait = float(retry_after)
        time.sleep(min(wait, self.max_wait_s))


def _after(attempt: int) -> str:
    return f" (after {attempt + 1} tries)" if attempt else ""


def _advice(status: int) -> str:
    if status == 429 or status >= 500:
        return "The service is busy or down; run the command again later (it resumes)."
    if status == 404:
        return "Check the service address (--api-url or its environment variable)."
    return "The request was refused; please report it with this message."


def short_url(url: str, limit: int = 120) -> str:
    """``url``, cut to ``limit`` characters for a message."""
    return url if len(url) <= limit else url[:limit] + "..."


def read_json(body: bytes, ctype: str, *, what: str, url: str):
    """Parse an answer as JSON, with a clear error for web pages and cut-short answers."""
    text = body.decode("utf-8", errors="replace").lstrip()
    if "html" in ctype.lower() or text.startswith("<"):
        raise FetchError(f"{what}: {short_url(url)} answered with a web page, not JSON "
                         f"(it starts {text[:60]!r}); the service may be down or the "
                         "address wrong. Check the address and run again later.")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" ({exc.msg} at character {exc.pos} of {len(body)})" \
            if isinstance(exc, json.JSONDecodeError) else ""
        raise FetchError(f"{what}: the answer from {short_url(url)} is not complete JSON"
                         f"{where}: it was cut short or damaged. Nothing of it was kept; run "
                         "the command again.") from exc


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
