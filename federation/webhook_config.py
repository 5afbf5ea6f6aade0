"""The ``webhooks:`` block of ``mesh.yaml``: its event kinds, its hooks and its problems (read by the
mesh loader, which reports them with their YAML paths, and by ``federation.webhooks``, which delivers).
A leaf module: the catalog reads it without the outbox."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

EVENTS = {
    "access_requested": "a principal asked for read access to a dataset",
    "access_level_approved": "the first of two approval levels was given; the second level waits",
    "access_approved": "an access request was approved (a grant with an expiry)",
    "access_denied": "an access request was denied",
    "access_revoked": "an approved access request's grant was revoked",
    "version_published": "a version of a dataset was published",
    "version_refused": "an onboarding batch was refused (nothing published)",
    "slo_breached": "an SLO of a dataset became breached",
    "quality_failed": "quality rules of a dataset failed",
    "quarantine_held": "an onboarding kept rows of a batch in quarantine (held until released or dropped)",
    "quarantine_released": "rows of a quarantine batch passed the rules again and were published",
    "quarantine_dropped": "a quarantine batch was discarded",
}
DEFAULT_TIMEOUT = 10.0
DEFAULT_ATTEMPTS = 12
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYS = {"name", "url", "events", "secret_env", "timeout", "max_attempts"}


@dataclass(frozen=True)
class Hook:
    name: str
    url: str
    events: frozenset[str]
    secret_env: str
    timeout: float = DEFAULT_TIMEOUT
    max_attempts: int = DEFAULT_ATTEMPTS

    def wants(self, kind: str) -> bool:
        return kind in self.events


def check_config(raw: Any) -> tuple[list[Hook], list[tuple[list, str, str]]]:
    """The hooks of a ``webhooks:`` block and its problems ``(yaml path, message, severity)``: errors for
    what cannot work (not http(s), credentials in the URL, unknown event kinds, no secret variable), a
    warning for a secret variable not set in this environment (its deliveries fail until it is)."""
    problems: list[tuple[list, str, str]] = []
    hooks: list[Hook] = []
    if raw is None:
        return hooks, problems
    if not isinstance(raw, list):
        return hooks, [([], "webhooks is a list of {url, events, secret_env}", "error")]
    names: set[str] = set()
    for i, item in enumerate(raw):
        def bad(key, message, severity="error", i=i):
            problems.append(([i] + ([key] if key else []), message, severity))

        if not isinstance(item, dict):
            bad(None, "a webhook is a mapping of url, events and secret_env")
            continue
        errors_before = sum(p[2] == "error" for p in problems)
        for key in sorted(set(map(str, item)) - _KEYS):
            bad(key, f"unknown webhook property {key!r} (properties: {', '.join(sorted(_KEYS))})")
        url = item.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None:
            bad("url", "a webhook needs its url (http or https)")
        else:
            try:
                port_ok = parts.port is None or 0 < parts.port < 65536
            except ValueError:
                port_ok = False
            if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
                bad("url", f"a webhook url is an http(s) URL with a host, not {parts.scheme or 'no'!r} scheme "
                    f"{'with' if parts.hostname else 'without'} a host")  # never the URL: its path may be secret
                parts = None
            elif parts.username is not None or parts.password is not None:
                bad("url", "a webhook url carries no credentials: the receiver checks the signature instead")
                parts = None
            elif parts.fragment:
                bad("url", "a webhook url has no #fragment")
                parts = None
        events = item.get("events")
        kinds: set[str] = set()
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            bad("events", f"events is a non-empty list of event kinds ({', '.join(EVENTS)}) or [\"*\"]")
        else:
            for j, kind in enumerate(events):
                if kind == "*":
                    kinds |= set(EVENTS)
                elif kind in EVENTS:
                    kinds.add(kind)
                else:
                    problems.append(([i, "events", j], f"unknown event kind {kind!r}; kinds: {', '.join(EVENTS)}",
                                     "error"))
        secret_env = item.get("secret_env")
        if not isinstance(secret_env, str) or not _ENV.match(secret_env):
            bad("secret_env", "secret_env names the environment variable holding the webhook's HMAC secret "
                "(letters, digits, _): deliveries are always signed")
            secret_env = None
        elif not os.environ.get(secret_env):
            bad("secret_env", f"the environment variable {secret_env} is not set: deliveries to this webhook "
                "fail (and are retried) until it holds the secret", "warning")
        timeout = item.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
            bad("timeout", "timeout is a number of seconds, above 0 and at most 60")
            timeout = None
        attempts = item.get("max_attempts", DEFAULT_ATTEMPTS)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 50:
            bad("max_attempts", "max_attempts is a whole number from 1 to 50")
            attempts = None
        name = item.get("name")
        if name is None:
            name = _default_name(url, parts)  # None for a bad URL, reported above
        elif not isinstance(name, str) or not name.strip():
            bad("name", "a webhook's name is a non-empty string")
            name = None
        if name is not None and name in names:
            bad("name", f"two webhooks are named {name!r}: name them apart (name:)")
            name = None
        if name is not None:
            names.add(name)
        if sum(p[2] == "error" for p in problems) == errors_before:  # a hook with any error is not used
            hooks.append(Hook(name, url, frozenset(kinds), secret_env, float(timeout), attempts))
    return hooks, problems


def _default_name(url: Any, parts) -> str | None:
    """A hook's name when none is given: its host and a digest of its URL (never the URL: its path may be a
    secret, as Slack's and Teams' are)."""
    if parts is None:
        return None
    return f"{parts.hostname}#{hashlib.sha256(str(url).encode()).hexdigest()[:8]}"


def hooks_of(mesh) -> list[Hook]:
    """The valid hooks a loaded mesh declares (an invalid block stops the mesh's load: see the loader)."""
    return check_config((getattr(mesh, "raw", None) or {}).get("webhooks"))[0]
