"""Slowing down password guessing at the three doors that take a password: the API token, the sign-in
page and the sign-up page.

Failed attempts are counted per client address (LOGIN_RATE_PER_IP) and per username
(LOGIN_RATE_PER_USERNAME) in the default cache, which is Redis in production (CACHE_URL), so every web
process shares the counts. While either count is full the door answers 429 with Retry-After, before the
password is even checked, and says so in the `winnow.security` log. Sign-up counts every attempt, as
each one creates an account or probes a name. A successful sign-in leaves the counts alone: the ones
an attacker ran up expire with their window.

The counters are DRF's SimpleRateThrottle (its rate format, cache layout, client address and wait),
split into a check and a record so that only failures count.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

log = logging.getLogger("winnow.security")


class AttemptCounter(SimpleRateThrottle):
    """The attempts of one client address or one username at one door, in a sliding window."""

    def __init__(self, scope: str, ident: str, rate: str | None) -> None:
        self.scope = scope
        self.rate = rate
        self.num_requests, self.duration = self.parse_rate(rate)
        # Hashed: a username is whatever the client sent, and cache keys must stay short and plain.
        self.key = self.cache_format % {"scope": scope, "ident": hashlib.sha256(ident.encode()).hexdigest()[:32]}

    def _load(self) -> None:
        self.now = self.timer()
        self.history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]

    def seconds_to_wait(self) -> int | None:
        """Whole seconds until the next attempt may be made, or None when one may be made now."""
        if self.rate is None:
            return None
        self._load()
        if len(self.history) < self.num_requests:
            return None
        return max(1, math.ceil(self.wait() or 1))

    def record(self) -> None:
        if self.rate is None:
            return
        self._load()
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history[: self.num_requests], self.duration)


def client_address(request: HttpRequest) -> str:
    """The client's address as DRF's throttles read it: REMOTE_ADDR, or the X-Forwarded-For entry that
    NUM_PROXIES trusted proxies in front of the server put there."""
    return BaseThrottle().get_ident(request)


class Guard:
    """The counters one attempt at `door` is judged by: its client address and the username it names."""

    def __init__(self, request: HttpRequest, *, door: str, username: Any) -> None:
        self.door = door
        self.address = client_address(request) or "unknown"
        self.username = username.strip().lower() if isinstance(username, str) else ""
        self.counters = [AttemptCounter(f"{door}_ip", self.address, settings.LOGIN_RATE_PER_IP)]
        if self.username:
            self.counters.append(AttemptCounter(f"{door}_username", self.username, settings.LOGIN_RATE_PER_USERNAME))

    def seconds_to_wait(self) -> int | None:
        """None when the attempt may go ahead; else the seconds to wait, logged as a refusal."""
        waits = [w for w in (c.seconds_to_wait() for c in self.counters) if w is not None]
        if not waits:
            return None
        wait = max(waits)
        log.warning("%s throttled: address=%s username=%r retry_after=%ss", self.door, self.address, self.username, wait)
        return wait

    def failed(self) -> None:
        """Count a failed attempt against the address and the username."""
        log.info("%s failed: address=%s username=%r", self.door, self.address, self.username)
        self._record()

    def attempted(self) -> None:
        """Count an attempt whatever its outcome (sign-up: each one creates an account or probes a name)."""
        log.info("%s attempt: address=%s username=%r", self.door, self.address, self.username)
        self._record()

    def _record(self) -> None:
        for counter in self.counters:
            counter.record()


TOO_MANY = "too many failed attempts from this address or for this username; wait, then try again."


def wait_words(seconds: int) -> str:
    return f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"
