"""The mesh's settings, declared once: name, type, default and help (the ``settings:`` block of ``mesh.yaml``).

``SETTINGS`` is the only list of them (Datasette's ``SETTINGS`` is the model). ``check(raw)`` validates a
``settings:`` block against it: an unknown key (with a "did you mean" suggestion) or a value of the wrong
type or range is reported by key, and the loader turns each into a ``Problem`` of ``mesh.yaml``.
``Settings`` is the checked result: a read-only mapping holding every declared setting, the mesh's value
or the declared default, so a caller reads ``mesh.settings["threads"]`` and never repeats a default.

This module imports nothing of Quanta's: anything may import it.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

MAX_SECONDS = 2_147_483.647  # PostgreSQL's largest statement_timeout (INT_MAX milliseconds), about 24.8 days

# DuckDB's memory sizes (its ParseMemoryLimit): a number and a unit of 1000^i or 1024^i bytes
_UNITS = {"b": 1, "byte": 1, "bytes": 1, "k": 10**3, "kb": 10**3, "kilobyte": 10**3, "kilobytes": 10**3,
          "m": 10**6, "mb": 10**6, "megabyte": 10**6, "megabytes": 10**6, "g": 10**9, "gb": 10**9,
          "gigabyte": 10**9, "gigabytes": 10**9, "t": 10**12, "tb": 10**12, "terabyte": 10**12,
          "terabytes": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>[a-z]+)\s*$", re.IGNORECASE)
MIN_MEMORY = 16 * 2**20  # below this the engine cannot even start its first query


@dataclass(frozen=True)
class Setting:
    """One setting: its ``kind`` is ``integer``, ``number``, ``string``, ``choice``, ``size`` (a DuckDB
    memory size such as ``4GB``), ``openlineage`` (a mapping of ``file``, ``url``, ``queries``) or ``variables``
    (a list of environment variable names and ``PREFIX_*`` patterns)."""

    name: str
    kind: str
    default: Any
    help: str
    minimum: float | None = None  # inclusive
    above: float | None = None  # exclusive minimum
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> Any:
        """``value`` as this setting's type; ``ValueError`` saying what is wrong (without the key)."""
        kind = self.kind
        if kind in ("integer", "number"):
            if isinstance(value, float) and kind == "integer" and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, (int, float) if kind == "number" else int):
                raise ValueError(f"must be {'an integer' if kind == 'integer' else 'a number'}, "
                                 f"not {_show(value)}")
            if not math.isfinite(value):
                raise ValueError(f"must be a finite number, not {_show(value)}")
            if self.minimum is not None and value < self.minimum:
                raise ValueError(f"must be at least {self.minimum:g}, not {_show(value)}")
            if self.above is not None and value <= self.above:
                raise ValueError(f"must be above {self.above:g}, not {_show(value)}")
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"must be at most {self.maximum:g}, not {_show(value)}")
            return float(value) if kind == "number" else value
        if kind in ("string", "choice", "size"):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"must be a non-empty string, not {_show(value)}")
            if kind == "choice" and value not in self.choices:
                raise ValueError(f"must be one of {', '.join(self.choices)}, not {_show(value)}")
            if kind == "size":
                size = memory_size(value)
                if size is None:
                    raise ValueError(f"must be a memory size such as 4GB or 512MiB (units: KB, MB, GB, TB, "
                                     f"KiB, MiB, GiB, TiB), not {_show(value)}")
                if size < MIN_MEMORY:
                    raise ValueError(f"must be at least 16MiB, not {_show(value)}")
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise ValueError(f"must be true or false, not {_show(value)}")
            return value
        if kind == "openlineage":
            if not isinstance(value, Mapping):
                raise ValueError(f"must be a mapping of file, url and queries, not {_show(value)}")
            unknown = sorted(str(k) for k in value if k not in ("file", "url", "queries"))
            if unknown:
                raise ValueError(f"has unknown key {unknown[0]!r} (keys: file, url, queries)")
            for key in ("file", "url"):
                if key in value and not isinstance(value[key], str):
                    raise ValueError(f"{key} must be a string, not {_show(value[key])}")
            if "queries" in value and not isinstance(value["queries"], bool):
                raise ValueError(f"queries must be true or false, not {_show(value['queries'])}")
            return dict(value)
        if kind == "engine":
            return engine(value)
        if kind == "variables":
            return variables(value)
        raise AssertionError(f"setting {self.name}: unknown kind {kind!r}")

    @property
    def type_name(self) -> str:
        if self.kind == "choice":
            return " or ".join(self.choices)
        return {"size": "memory size", "openlineage": "mapping", "engine": "mapping",
                "variables": "list of names"}.get(self.kind, self.kind)


SETTINGS: tuple[Setting, ...] = (
    # the engine
    Setting("memory_limit", "size", None, "DuckDB's memory limit, e.g. 4GB (default: DuckDB's, 80% of RAM)"),
    Setting("threads", "integer", 2, "DuckDB's worker threads (also for onboarding's staging)", minimum=1),
    Setting("engine", "engine", {"kind": "duckdb"}, "the engine of data queries: `{kind: duckdb}` (embedded) or "
            "`{kind: spark_connect, url: sc://host:port, token_env: VAR}` (a Spark Connect server; its token "
            "read from the environment variable VAR). System tables stay in the embedded engine"),
    # limits that protect the server from one principal (admission.py, rewrite/limits.py)
    Setting("audit_required", "boolean", False, "refuse queries when the audit log cannot be written (a "
            "read-only or full state folder); by default they run, with a warning"),
    Setting("query_timeout_seconds", "number", 300.0, "a query's time-out; a client may lower it "
            "(timeout, statement_timeout), never raise it", above=0, maximum=MAX_SECONDS),
    Setting("max_sql_bytes", "integer", 262_144, "the largest query text (UTF-8 bytes)", minimum=1),
    Setting("max_sql_depth", "integer", 128, "nesting of brackets, CASE and operator chains in a query text",
            minimum=1),
    Setting("max_sql_subquery_depth", "integer", 8, "nesting of subqueries in expressions, through CTE "
            "references too", minimum=1, maximum=40),
    Setting("max_queries_per_principal", "integer", 4, "queries one principal runs at once (an open result "
            "counts)", minimum=1),
    Setting("max_queued_queries_per_principal", "integer", 4, "its queries waiting for a free slot; beyond: "
            "refused", minimum=0),
    Setting("queue_timeout_seconds", "number", 10.0, "the longest wait for a slot (never past the query's "
            "time-out)", above=0, maximum=MAX_SECONDS),
    # failed logins (governance/throttle.py)
    Setting("max_failed_logins", "integer", 20, "failed logins of one client (its address; the user it claims "
            "over Flight SQL) within failed_login_window_seconds before it is refused at once, for one window, "
            "before any credential is checked (0: never refused)", minimum=0),
    Setting("failed_login_window_seconds", "number", 60.0, "the window of max_failed_logins, and how long a "
            "client that reached it is refused", above=0, maximum=86400),
    # the PostgreSQL wire server (server/pgwire/server.py)
    Setting("pg_max_connections", "integer", 100, "PostgreSQL wire connections at once", minimum=1),
    Setting("pg_startup_timeout_seconds", "number", 30.0, "to finish the startup and authentication",
            above=0, maximum=MAX_SECONDS),
    Setting("pg_database_aliases", "string", "", "other database names PostgreSQL clients may connect with, "
            "comma-separated (the mesh's name always works; any other is refused: 3D000)"),
    Setting("pg_idle_timeout_seconds", "number", 3600.0, "a session that sends, or reads, nothing this long "
            "is closed (0: never)", minimum=0, maximum=MAX_SECONDS),
    # the Arrow Flight SQL server (server/flight/)
    Setting("flight_ticket_timeout_seconds", "number", 60.0, "a Flight SQL statement's result not fetched "
            "(DoGet) this long after GetFlightInfo is cancelled, closed and audited", above=0, maximum=MAX_SECONDS),
    Setting("flight_statement_timeout_seconds", "number", 3600.0, "a Flight SQL prepared statement unused "
            "this long is closed", above=0, maximum=MAX_SECONDS),
    Setting("flight_session_timeout_seconds", "number", 3600.0, "a Flight SQL session (the bearer token "
            "answering basic authentication) unused this long ends; revoking its token ends it at once",
            above=0, maximum=MAX_SECONDS),
    Setting("flight_max_parameter_bytes", "integer", 1_048_576, "the largest parameter batch a Flight SQL "
            "client binds to a prepared statement (DoPut)", minimum=1),
    # remote sources (engine/duckdb_backend.py, engine/hung.py)
    Setting("source_connect_timeout_seconds", "number", 5.0, "the longest a remote source (PostgreSQL) may take "
            "to connect and describe its tables while the mesh loads; past it the quantum is unavailable and "
            "retried in the background", above=0, maximum=3600),
    # onboarding and versions (onboarding/)
    Setting("warehouse", "string", "warehouse", "the folder of published versions (relative to the mesh)"),
    Setting("versions_kept", "integer", 5, "published versions kept per dataset; older ones expire",
            minimum=1),
    Setting("expired_version_grace_seconds", "number", None, "how long an expired version's files stay for the "
            "queries that may still read them (default: query_timeout_seconds plus 60); a server's current "
            "state holds its files as long as it serves them", minimum=0),
    Setting("onboarding_on_error", "choice", "reject", "what a failed quality rule does to a batch when the "
            "rule does not say", choices=("reject", "quarantine")),
    # service levels (quality/slo.py)
    Setting("availability_window_days", "number", 30.0, "the window of availability probes", above=0),
    Setting("availability_min_probes", "integer", 10, "fewer probes in the window are too few to say an "
            "availability objective is met", minimum=1),
    # hot reload (live.py)
    Setting("live_poll_seconds", "number", 0.2, "how often a running server looks for changes of the mesh "
            "files and the state", above=0, maximum=3600),
    # contracts (catalog/standards.py)
    Setting("contract_variables", "variables", (), "the environment variables a contract's `${VAR}` may read "
            "(ODCS v3.2), in its servers block only: names or `PREFIX_*` patterns, e.g. `[GREATPARTS_PG_HOST, "
            "GREATPARTS_PG_PORT]`. Any other variable is an error and its quantum is not served; secrets are "
            "never readable (names with PASSWORD, SECRET, TOKEN, KEY..., `QUANTA_*`, and every `*_env` of the "
            "mesh)"),
    # lineage (lineage/openlineage.py)
    Setting("openlineage", "openlineage", None, "where OpenLineage events go: {file, url, queries}"),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS}


class Settings(Mapping[str, Any]):
    """A mesh's checked settings: every declared setting, the mesh's value or else its default.

    ``settings["x"]`` of an undeclared ``x`` is a ``KeyError``; ``explicit`` holds only what ``mesh.yaml`` set.
    """

    __slots__ = ("explicit",)

    def __init__(self, values: Mapping[str, Any] | None = None):
        self.explicit: dict[str, Any] = dict(values or {})

    def __getitem__(self, name: str) -> Any:
        if name in self.explicit:
            return self.explicit[name]
        return DEFAULTS[name]

    def __iter__(self) -> Iterator[str]:
        return iter(DEFAULTS)

    def __len__(self) -> int:
        return len(DEFAULTS)

    def __repr__(self) -> str:
        return f"Settings({self.explicit!r})"

    def __reduce__(self):
        return (Settings, (self.explicit,))

    @classmethod
    def of(cls, values: Mapping[str, Any] | None) -> "Settings":
        """``values`` as ``Settings`` (already checked ones as they are); ``ValueError`` when invalid."""
        if isinstance(values, Settings):
            return values
        checked, problems = check(values or {})
        if problems:
            raise ValueError("; ".join(message for _, message in problems))
        return checked


def check(raw: Any) -> tuple[Settings, list[tuple[str | None, str]]]:
    """The ``Settings`` of a ``settings:`` block, and its problems as (key, message): the key is None when
    the block itself is not a mapping. Invalid values are left out (their default applies)."""
    if raw is None:
        return Settings(), []
    if not isinstance(raw, Mapping):
        return Settings(), [(None, f"settings must be a mapping of setting names to values, not {_show(raw)}")]
    values: dict[str, Any] = {}
    problems: list[tuple[str | None, str]] = []
    for key, value in raw.items():
        setting = BY_NAME.get(key) if isinstance(key, str) else None
        if setting is None:
            close = difflib.get_close_matches(str(key), BY_NAME, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (settings: {', '.join(BY_NAME)})"
            problems.append((str(key), f"unknown setting {str(key)!r}{hint}"))
            continue
        try:
            values[key] = setting.check(value)
        except ValueError as e:
            problems.append((key, f"setting {key!r} {e}"))
    return Settings(values), problems


ENGINES = ("duckdb", "spark_connect")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SPARK_URL = re.compile(r"^sc://(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::[0-9]{1,5})?/?$")


def engine(value: Any) -> dict:
    """The ``engine`` setting: ``{kind: duckdb}`` or ``{kind: spark_connect, url, token_env}``; ``ValueError``
    naming the key that is wrong. The token itself never sits in ``mesh.yaml``: ``token_env`` names the
    environment variable holding it."""
    if isinstance(value, str) and value in ENGINES:  # engine: duckdb
        value = {"kind": value}
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a mapping such as {{kind: duckdb}} or {{kind: spark_connect, url: "
                         f"sc://host:port, token_env: VAR}}, not {_show(value)}")
    kind = value.get("kind")
    if kind not in ENGINES:
        raise ValueError(f"kind must be one of {', '.join(ENGINES)}, not {_show(kind)}")
    allowed = ("kind",) if kind == "duckdb" else ("kind", "url", "token_env")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise ValueError(f"has unknown key {unknown[0]!r} (keys of kind {kind}: {', '.join(allowed)})")
    if kind == "duckdb":
        return {"kind": "duckdb"}
    url = value.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"url must be the Spark Connect server's address sc://host:port, not {_show(url)}")
    if not _SPARK_URL.match(url.strip()):
        hint = (" (the token goes in the environment variable named by token_env, not in the url)"
                if ";" in url or "token" in url.lower() else "")
        shown = _show(url.split(";", 1)[0] + (";..." if ";" in url else ""))  # never echo a token
        raise ValueError(f"url must be sc://host:port (a host name or address and a port), not {shown}{hint}")
    out = {"kind": kind, "url": url.strip()}
    if "token_env" in value:
        env = value["token_env"]
        if not isinstance(env, str) or not _ENV_NAME.match(env):
            raise ValueError(f"token_env must name an environment variable (letters, digits and _), "
                             f"not {_show(env)}")
        out["token_env"] = env
    return out


# -- contract variables: what a contract's ${VAR} may never read ------------------------------------------
# A contract is written by a domain team, and what it says is served to anyone (the dictionary is open):
# a variable naming one of the server's secrets would publish it. These names are refused even when the
# mesh lists them (case-insensitive; a name is split into words at "_").
SECRET_WORDS_IN = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "CREDENTIAL", "PRIVATE", "APIKEY",
                   "ACCESSKEY", "SIGNATURE")
SECRET_WORDS = frozenset({"KEY", "KEYS", "PASS", "PWD", "AUTH", "SALT", "DSN", "COOKIE", "SESSION", "CERT",
                          "CONN", "CONNECTION", "PASSFILE", "HMAC", "JWT", "BEARER", "OAUTH"})
SECRET_NAMES = frozenset({"DATABASE_URL"})
SECRET_PREFIXES = ("QUANTA_",)  # Quanta's own: state folder, mask salt, server credentials, webhook secrets
_VARIABLE_PATTERN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\*)?$")


def secret_like(name: str) -> str | None:
    """Why an environment variable's name says it holds a secret (or is Quanta's own), else None."""
    upper = name.upper()
    if upper in SECRET_NAMES:
        return "it commonly holds credentials"
    if upper.startswith(SECRET_PREFIXES):
        return "QUANTA_* variables are Quanta's own"
    words = [w for w in upper.split("_") if w]
    for w in SECRET_WORDS_IN:
        if w in upper.replace("_", ""):
            return f"its name says it holds a secret ({w})"
    for w in words:
        if w in SECRET_WORDS:
            return f"its name says it holds a secret ({w})"
    return None


def variables(value: Any) -> tuple[str, ...]:
    """The ``contract_variables`` setting: a list of environment variable names and ``PREFIX_*`` patterns;
    ``ValueError`` for another value, a bare ``*`` or a name or prefix that looks like a secret."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"must be a list of environment variable names or PREFIX_* patterns, not {_show(value)}")
    out: list[str] = []
    for item in value:
        m = _VARIABLE_PATTERN.match(item) if isinstance(item, str) else None
        if m is None:
            hint = " (name the variables, or a prefix such as GREATPARTS_*)" if item == "*" else ""
            raise ValueError(f"entries must be environment variable names (letters, digits and _) or "
                             f"PREFIX_* patterns, not {_show(item)}{hint}")
        reason = secret_like(m.group(1))
        if reason:
            raise ValueError(f"may not allow {item!r}: {reason}; a contract's author would choose to "
                             "read it")
        if item not in out:
            out.append(item)
    return tuple(out)


def memory_size(text: str) -> int | None:
    """The bytes of a DuckDB memory size (``4GB``, ``1.5 GiB``), or None when it is not one."""
    m = _SIZE.match(text)
    unit = _UNITS.get(m.group("unit").lower()) if m else None
    return None if unit is None else int(float(m.group("number")) * unit)


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else ("null" if value is None else str(value))
    if isinstance(value, bool):
        text = str(value).lower()
    return text if len(text) <= 60 else text[:57] + "..."


def table() -> str:
    """The settings as a Markdown table (README's "Settings" section is this)."""
    rows = ["| setting | type | default | what it does |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        default = "" if s.default is None else (f"{s.default:g}" if isinstance(s.default, float) else s.default)
        if isinstance(default, tuple):
            default = ", ".join(default)
        if isinstance(default, Mapping):
            default = "{" + ", ".join(f"{k}: {v}" for k, v in default.items()) + "}"
        rows.append(f"| `{s.name}` | {s.type_name} | {f'`{default}`' if default != '' else '-'} | {s.help} |")
    return "\n".join(rows)
