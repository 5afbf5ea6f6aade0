"""Session state of one PostgreSQL connection and the utility statements the wire layer answers
itself: SET / SHOW / RESET, BEGIN / COMMIT / ROLLBACK (read only: nothing to commit), DISCARD,
DECLARE / FETCH / MOVE / CLOSE of cursors.

Statements are recognised with sqlglot's PostgreSQL tokenizer (comments, quoting and dollar strings
handled), never by substring matching; queries are parsed with sqlglot to tell the catalog queries
(pg_catalog, information_schema, catalog functions) from the queries of the mesh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
import sqlglot.expressions as exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from ... import errors
from ...admission import check_timeout
from ...errors import ProgrammingError, SyntaxError
from ...governance import audit
from .timeouts import statement_timeout

SERVER_VERSION = "16.0 (Quanta)"


class ReadOnlyTransaction(ProgrammingError):
    """A transaction mode that would write: this server only reads."""

    code = "read_only"
    sqlstate = "25006"

PURPOSE = "quanta.purpose"  # the purpose the session's queries declare (SET, or options='-c quanta.purpose=x')

# settings reported with ParameterStatus at startup and whenever they change
REPORTED = ("server_version", "server_encoding", "client_encoding", "DateStyle", "IntervalStyle", "TimeZone",
            "integer_datetimes", "standard_conforming_strings", "application_name", "is_superuser",
            "session_authorization", "in_hot_standby", "default_transaction_read_only", "search_path")

DEFAULTS = {
    "server_version": SERVER_VERSION.split()[0], "server_version_num": "160000", "server_encoding": "UTF8",
    "client_encoding": "UTF8", "DateStyle": "ISO, MDY", "IntervalStyle": "postgres", "TimeZone": "UTC",
    "integer_datetimes": "on", "standard_conforming_strings": "on", "application_name": "", "is_superuser": "off",
    "in_hot_standby": "off", "default_transaction_read_only": "on", "transaction_read_only": "on",
    "transaction_isolation": "read committed", "default_transaction_isolation": "read committed",
    "extra_float_digits": "1", "search_path": '"$user", public', "statement_timeout": "0",
    "lock_timeout": "0", "idle_in_transaction_session_timeout": "0", "max_identifier_length": "63",
    "bytea_output": "hex", "client_min_messages": "notice", "datestyle": "ISO, MDY", "lc_messages": "C",
    "lc_monetary": "C", "lc_numeric": "C", "lc_time": "C", "max_index_keys": "32", "block_size": "8192",
    "default_transaction_deferrable": "off", "transaction_deferrable": "off", "row_security": "on",
    "synchronous_commit": "on", "jit": "off", "geqo": "on", "timezone_abbreviations": "Default",
    "ssl": "off", "port": "5433", "server_encoding_name": "UTF8", "session_authorization": "",
    "role": "none", "work_mem": "4MB", "default_table_access_method": "heap", PURPOSE: "",
}
_CANONICAL = {k.lower(): k for k in DEFAULTS}
_ALIASES = {"timezone": "TimeZone", "datestyle": "DateStyle", "intervalstyle": "IntervalStyle",
            "time zone": "TimeZone", "names": "client_encoding"}


def canonical(name: str) -> str:
    low = name.lower()
    return _ALIASES.get(low) or _CANONICAL.get(low) or low


class InvalidCatalogName(ProgrammingError):
    """A database name that is not the mesh's (nor one of its aliases)."""

    code = "invalid_catalog_name"
    sqlstate = "3D000"


def database_aliases(mesh) -> list[str]:
    """The other names of the mesh's database (the mesh setting ``pg_database_aliases``)."""
    return [a.strip() for a in str(mesh.settings.get("pg_database_aliases") or "").split(",") if a.strip()]


def check_database(name: str, mesh) -> str:
    """The database a client connects to: the mesh's name, or an alias in the mesh setting
    ``pg_database_aliases``; any other name is refused like PostgreSQL (3D000). Answers the mesh's name."""
    aliases = database_aliases(mesh)
    if name == mesh.name or name in aliases:
        return mesh.name
    also = f" (or one of its aliases: {', '.join(aliases)})" if aliases else \
        " (an operator may add aliases: mesh setting pg_database_aliases)"
    raise InvalidCatalogName(f'database "{name}" does not exist: this server serves the mesh '
                             f'"{mesh.name}"{also}')


def startup_settings(options: dict[str, str]) -> dict[str, str]:
    """The settings of a startup packet: its parameters (application_name, search_path, ...) and those of
    ``options`` (``-c name=value``, ``--name=value``, as libpq's PGOPTIONS: backslash escapes a space)."""
    out = {}
    for key in ("application_name", "client_encoding", "DateStyle", "TimeZone", "search_path",
                "extra_float_digits", PURPOSE):
        for k, v in options.items():
            if k.lower() == key.lower():
                out[key] = v
    words, current, escaped = [], "", False
    for ch in options.get("options", ""):
        if escaped:
            current, escaped = current + ch, False
        elif ch == "\\":
            escaped = True
        elif ch.isspace():
            if current:
                words.append(current)
            current = ""
        else:
            current += ch
    if current:
        words.append(current)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-c" and i + 1 < len(words):
            word, i = words[i + 1], i + 1
        elif word.startswith("-c") or word.startswith("--"):
            word = word[2:]
        else:
            raise ProgrammingError(f"invalid command-line argument in options: {word!r} (write -c name=value)")
        name, eq, value = word.partition("=")
        if not eq or not name:
            raise ProgrammingError(f"invalid option {word!r} in options: write -c name=value")
        out[canonical(name.replace("-", "_"))] = value
        i += 1
    return out


def open_session(user: str, options: dict[str, str], platform, principal) -> Session:
    """The session of a connection that authenticated as ``principal``: its database checked
    (``check_database``), its startup settings applied, a declared purpose checked against the principal's
    grants (``platform.require_purpose``: 42501, audited). Raises the ``errors.Error`` that refuses it."""
    # no database parameter at all (libpq always sends one, the user's name by default): the mesh
    database = check_database(options.get("database") or platform.mesh.name, platform.mesh)
    settings = startup_settings(options)

    def check_purpose(purpose: str) -> None:
        platform.require_purpose(principal, purpose, f"SET {PURPOSE} = '{purpose}'", "pgwire")

    session = Session(user, database, check_purpose=check_purpose)
    if PURPOSE in settings:
        session.set(PURPOSE, settings.pop(PURPOSE))
    for k, v in settings.items():
        try:
            session.set(k, v)
        except errors.Error:  # a bad client_encoding or DateStyle in the startup packet: the default stays
            pass
    audit.APPLICATION.set(session.get("application_name") or None)  # not a former connection's of the thread
    return session


def with_search_path(statement: Statement, session: Session, platform) -> Statement:
    """A query's unqualified table names resolved on the session's search_path (``qualify``): its text is
    then the qualified query, for Parse, Describe and Execute alike."""
    if statement.kind not in ("query", "catalog") or statement.expression is None:
        return statement
    if without_database(statement.expression, platform.mesh):
        statement.text = statement.expression.sql("postgres")
    if statement.kind != "query":
        return statement
    relations = _relations(platform)
    path = [s for s in search_path(session) if s in relations[0]]
    if path and qualify(statement.expression, path, lambda schema, name: (schema, name) in relations[1]):
        statement.text = statement.expression.sql("postgres")
    return statement


def without_database(expression: exp.Expression, mesh) -> bool:
    """Names qualified by a database, ``greatparts.sales.orders`` (PostgreSQL accepts the current database's
    name there), without it, in place, when it names the mesh's database or one of its aliases; any other
    database is refused like PostgreSQL (0A000). True when a name changed."""
    names = {mesh.name, *database_aliases(mesh)}
    changed = False
    for node in list(expression.find_all(exp.Table, exp.Column)):
        catalog = node.args.get("catalog")
        if not isinstance(catalog, exp.Identifier) or not catalog.name:
            continue
        if (catalog.name if catalog.quoted else catalog.name.lower()) not in names and catalog.name not in names:
            raise errors.NotSupportedError("cross-database references are not implemented: "
                                           f"{'.'.join(part.name for part in node.parts)}")
        node.set("catalog", None)
        changed = True
    return changed


_RELATIONS: dict[int, tuple] = {}


def _relations(platform) -> tuple[set[str], set[tuple[str, str]]]:
    """(schemas, (schema, table) pairs) of a platform's state: every dataset, readable or not (a denied one
    is then refused by the pipeline, not 'not found'), and the system tables."""
    state = platform.state
    found = _RELATIONS.get(id(state))
    if found is None or found[0] is not state:
        pairs = {(ds.quantum.lower(), ds.name.lower()) for ds in state.mesh.datasets()}
        pairs |= {(s.lower(), n.lower()) for s, n in state.namespace.system_tables if s.lower() == "system"}
        _RELATIONS.clear()  # the current state only
        found = _RELATIONS[id(state)] = (state, ({s for s, _ in pairs}, pairs))
    return found[1]


def search_path(session) -> list[str]:
    """The schemas named by the session's search_path, in order (``$user`` is the user's name; unquoted
    names folded to lower case), whether they exist or not."""
    out = []
    for item in (session.get("search_path") or "").split(","):
        item = item.strip()
        if len(item) >= 2 and item[0] == item[-1] == '"':
            item = item[1:-1].replace('""', '"')
        elif len(item) >= 2 and item[0] == item[-1] == "'":
            item = item[1:-1]
        else:
            item = item.lower()
        if item == "$user":
            item = session.user
        if item and item not in out:
            out.append(item)
    return out


def qualify(expression: exp.Expression, path: list[str], exists) -> bool:
    """Unqualified table names resolved on the search path, in place, like PostgreSQL: the first schema of
    ``path`` where ``exists(schema, name)`` names a relation; a CTE's name in scope is left alone, and so
    is a name found nowhere (the pipeline reports it). True when a name was qualified."""
    changed = False
    for table in list(expression.find_all(exp.Table)):
        if table.args.get("db") is not None or not isinstance(table.this, exp.Identifier) or not table.name:
            continue
        name = table.name if table.this.quoted else table.name.lower()
        if _cte_in_scope(table, name):
            continue
        for schema in path:
            if exists(schema, name):
                table.set("db", exp.to_identifier(schema))
                changed = True
                break
    return changed


def _cte_in_scope(table: exp.Table, name: str) -> bool:
    node = table.parent
    while node is not None:
        w = node.args.get("with_") or node.args.get("with")
        if isinstance(w, exp.With) and any(c.alias_or_name.lower() == name.lower() for c in w.expressions):
            return True
        node = node.parent
    return False


@dataclass
class Session:
    user: str
    database: str
    settings: dict[str, str] = field(default_factory=dict)
    in_transaction: bool = False
    failed: bool = False  # an error inside a transaction block: 'E' until ROLLBACK
    # checks a purpose before SET quanta.purpose takes it (the server: platform.require_purpose)
    check_purpose: Callable[[str], None] | None = field(default=None, repr=False)
    # the session's open cursors as pg_cursors rows (the server: its DECLAREd cursors)
    open_cursors: Callable[[], list[dict]] | None = field(default=None, repr=False)

    def __post_init__(self):
        base = dict(DEFAULTS)
        base["session_authorization"] = self.user
        base.update(self.settings)
        self._defaults = dict(base)
        self.settings = base

    def get(self, name: str) -> str | None:
        return self.settings.get(canonical(name))

    def set(self, name: str, value: str) -> str:
        key = canonical(name)
        if key in ("server_version", "server_encoding", "integer_datetimes", "is_superuser", "server_version_num",
                   "session_authorization", "max_identifier_length", "block_size"):
            raise ProgrammingError(f'parameter "{name}" cannot be changed')
        if key == "client_encoding" and value.upper().replace("-", "") not in ("UTF8", "UNICODE"):
            raise ProgrammingError(f"unsupported client encoding {value!r}: this server speaks UTF8 only")
        if key == "client_encoding":
            value = "UTF8"
        if key == "TimeZone":
            if value.upper() in ("LOCAL", "DEFAULT"):
                value = "UTC"
        if key in ("default_transaction_read_only", "transaction_read_only") and value.lower() in ("off", "false", "0"):
            raise ReadOnlyTransaction("this server is read only")
        if key == PURPOSE:
            value = value.strip()
            if value and self.check_purpose is not None:
                self.check_purpose(value)  # AccessDenied (42501) for a purpose the principal does not hold
        if key == "statement_timeout":
            seconds = statement_timeout(value)  # 22023 now for a value that is not a time-out
            if seconds is not None:
                check_timeout(seconds, "statement_timeout")
        self.settings[key] = value
        if key == "application_name":
            audit.APPLICATION.set(value or None)  # this connection's thread: its queries' audit entries
        return key

    def reset(self, name: str | None) -> list[str]:
        if name is None:
            changed = [k for k, v in self.settings.items() if self._defaults.get(k) != v]
            self.settings = dict(self._defaults)
        else:
            key = changed = canonical(name)
            changed = [key]
            if key in self._defaults:
                self.settings[key] = self._defaults[key]
            else:
                self.settings.pop(key, None)
        if "application_name" in changed:
            audit.APPLICATION.set(self.settings.get("application_name") or None)
        return changed

    @property
    def purpose(self) -> str | None:
        return self.settings.get(PURPOSE) or None

    @property
    def status(self) -> str:
        if self.failed:
            return "E"
        return "T" if self.in_transaction else "I"

    @property
    def timezone(self) -> str:
        return self.settings.get("TimeZone", "UTC")


# -- statements ---------------------------------------------------------------------------------------------

class _Tokenizer(Postgres.Tokenizer):
    COMMANDS: set = set()  # tokenize SHOW/FETCH/DECLARE... word by word, not as one opaque string


_TOKENIZER = _Tokenizer(dialect="postgres")


def tokens(sql: str):
    try:
        return _TOKENIZER.tokenize(sql)
    except TokenError as e:
        raise SyntaxError(f"syntax error: {e}") from None


def split(sql: str) -> list[str]:
    """The statements of a simple Query message (split on the semicolons the tokenizer finds)."""
    toks = tokens(sql)
    out, start = [], 0
    for t in toks:
        if t.token_type == TokenType.SEMICOLON:
            out.append(sql[start:t.start])
            start = t.end + 1
    tail = sql[start:]
    if tail.strip() or not out:
        out.append(tail)
    return [s for s in out if s.strip()] or [""]


@dataclass
class Statement:
    kind: str  # empty | set | show | reset | begin | commit | rollback | noop | discard | declare | fetch |
    #            move | close | deallocate | catalog | query
    text: str
    name: str | None = None
    value: str | None = None
    count: int | None = None  # FETCH / MOVE count (None: ALL)
    direction: str = "FORWARD"  # FETCH / MOVE: FORWARD | BACKWARD | ABSOLUTE | RELATIVE
    scroll: bool = False  # DECLARE ... SCROLL CURSOR
    query: str | None = None  # DECLARE ... FOR query
    binary: bool = False  # DECLARE ... BINARY CURSOR: rows in binary format (simple query protocol)
    tag: str = ""
    expression: exp.Expression | None = None


def _word(t) -> str:
    return t.text.upper()


def _dotted_name(toks) -> tuple[str, list]:
    """A setting's name (``search_path``, ``quanta.purpose``) and the tokens after it."""
    if not toks or toks[0].token_type in (TokenType.EQ, TokenType.DOT):
        return "", list(toks)
    parts, i = [toks[0].text], 1
    while i + 1 < len(toks) and toks[i].token_type == TokenType.DOT:
        parts.append(toks[i + 1].text)
        i += 2
    return ".".join(parts), list(toks[i:])


def _value_text(sql: str, toks) -> str:
    """The value of a SET: the remaining tokens, quotes removed, list items joined by ', '."""
    items, current = [], []
    for t in toks:
        if t.token_type == TokenType.COMMA:
            items.append(" ".join(current))
            current = []
        else:
            current.append(t.text)
    items.append(" ".join(current))
    return ", ".join(items)


def classify(text: str, is_catalog) -> Statement:
    """What a statement is; ``is_catalog(expression)`` tells the catalog queries apart."""
    toks = tokens(text)
    if not toks:
        return Statement("empty", text)
    first = _word(toks[0])
    words = [_word(t) for t in toks]
    if first == "SET":
        rest = toks[1:]
        if rest and _word(rest[0]) in ("SESSION", "LOCAL") and len(rest) > 1 and \
                _word(rest[1]) not in ("CHARACTERISTICS", "AUTHORIZATION"):
            rest = rest[1:]
        head = [_word(t) for t in rest[:3]]
        if head[:1] == ["TRANSACTION"] or head[:2] == ["SESSION", "CHARACTERISTICS"]:
            return Statement("set_transaction", text, value=" ".join(words), tag="SET")
        if head[:2] == ["SESSION", "AUTHORIZATION"]:
            return Statement("set_authorization", text, value=" ".join(t.text for t in rest[2:]), tag="SET")
        if head[:1] == ["ROLE"]:  # SET ROLE x, SET role TO x, SET role = x
            named = rest[2:] if len(rest) > 1 and (rest[1].token_type == TokenType.EQ or _word(rest[1]) == "TO") \
                else rest[1:]
            return Statement("set_authorization", text, name="role", value=" ".join(t.text for t in named), tag="SET")
        if head[:2] == ["TIME", "ZONE"]:
            return Statement("set", text, name="TimeZone", value=_value_text(text, rest[2:]), tag="SET")
        if head[:1] == ["NAMES"]:
            return Statement("set", text, name="client_encoding", value=_value_text(text, rest[1:]), tag="SET")
        name, rest = _dotted_name(rest)
        if rest and (rest[0].token_type == TokenType.EQ or _word(rest[0]) == "TO"):
            value = _value_text(text, rest[1:])
            if value.upper() == "DEFAULT":
                return Statement("reset", text, name=name, tag="SET")
            return Statement("set", text, name=name, value=value, tag="SET")
        raise SyntaxError("syntax error in SET")
    if first == "SHOW":
        rest = words[1:]
        if rest[:3] == ["TRANSACTION", "ISOLATION", "LEVEL"]:
            return Statement("show", text, name="transaction_isolation", tag="SHOW")
        if rest[:2] == ["TIME", "ZONE"]:
            return Statement("show", text, name="TimeZone", tag="SHOW")
        name, after = _dotted_name(toks[1:])
        if not name or after:
            raise SyntaxError("syntax error in SHOW")
        return Statement("show", text, name=name, tag="SHOW")
    if first == "RESET":
        name, after = _dotted_name(toks[1:])
        if not name or after:
            raise SyntaxError("syntax error in RESET")
        return Statement("reset", text, name=None if name.upper() == "ALL" else name, tag="RESET")
    if first in ("BEGIN", "START"):
        if first == "START" and words[1:2] != ["TRANSACTION"]:
            raise SyntaxError("syntax error at START")
        _check_transaction_modes(words[2 if first == "START" else 1:])
        return Statement("begin", text, tag="BEGIN")
    if first in ("COMMIT", "END"):
        return Statement("commit", text, tag="COMMIT")
    if first in ("ROLLBACK", "ABORT"):
        if "TO" in words:
            return Statement("noop", text, tag="ROLLBACK")
        return Statement("rollback", text, tag="ROLLBACK")
    if first in ("SAVEPOINT", "RELEASE"):
        return Statement("savepoint", text, tag=first)
    if first == "DISCARD":
        return Statement("discard", text, name=words[1] if len(words) > 1 else "ALL", tag="DISCARD " +
                         (words[1] if len(words) > 1 else "ALL"))
    if first == "DEALLOCATE":
        return Statement("deallocate", text, tag="DEALLOCATE" + (" ALL" if "ALL" in words else ""))
    if first == "DECLARE":
        try:
            at = words.index("CURSOR")
            for_at = words.index("FOR", at)
        except ValueError:
            raise SyntaxError("syntax error in DECLARE: DECLARE name CURSOR FOR query") from None
        options = words[2:at]
        if set(options) - {"BINARY", "INSENSITIVE", "NO", "SCROLL", "ASENSITIVE"}:
            raise SyntaxError("syntax error in DECLARE: DECLARE name [BINARY] [NO] SCROLL CURSOR "
                              "[WITH | WITHOUT HOLD] FOR query")
        return Statement("declare", text, name=toks[1].text, query=text[toks[for_at].end + 1:],
                         value="HOLD" if "HOLD" in words[at:for_at] and "WITHOUT" not in words[at:for_at] else "",
                         binary="BINARY" in options, scroll="SCROLL" in options and "NO" not in options,
                         tag="DECLARE CURSOR")
    if first in ("FETCH", "MOVE"):
        return _fetch(toks, words, text, first)
    if first == "CLOSE":
        if len(toks) != 2:
            raise SyntaxError("syntax error in CLOSE")
        return Statement("close", text, name=None if words[1] == "ALL" else toks[1].text, tag="CLOSE CURSOR")
    if first in ("LISTEN", "UNLISTEN", "NOTIFY"):
        return Statement("noop", text, tag=first)
    source = _oid_arrays(text, toks)
    try:
        expression = sqlglot.parse_one(source, read="postgres")
    except (ParseError, TokenError):
        return Statement("query", text)  # the pipeline reports the syntax error with its position
    if expression is not None:
        expression.meta[SOURCE] = source  # the text its nodes' positions are in (a catalog query's column names)
    if expression is not None and is_catalog(expression):
        return Statement("catalog", text, expression=expression)
    return Statement("query", text, expression=expression)


SOURCE = "pg_source"  # the meta key of a parsed statement's text
_OID_TYPES = {"oid", "regclass", "regtype", "regproc", "regnamespace", "regrole", "xid"}


def _oid_arrays(text: str, toks) -> str:
    """``::oid[]`` (asyncpg, pgjdbc) spelled ``::uinteger[]``, which sqlglot parses: found by tokens."""
    spans = []
    for i in range(1, len(toks) - 2):
        if toks[i - 1].token_type == TokenType.DCOLON and toks[i].text.lower() in _OID_TYPES and \
                toks[i + 1].token_type == TokenType.L_BRACKET and toks[i + 2].token_type == TokenType.R_BRACKET:
            spans.append((toks[i].start, toks[i].end))
    for start, end in reversed(spans):
        text = text[:start] + "uinteger" + text[end + 1:]
    return text


def _check_transaction_modes(words: list[str]) -> None:
    if words[:1] in (["WORK"], ["TRANSACTION"]):
        words = words[1:]
    joined = " ".join(words)
    if "READ WRITE" in joined:
        raise ReadOnlyTransaction("this server is read only: READ WRITE transactions are not available")


_DIRECTIONS = {"NEXT": ("FORWARD", 1), "PRIOR": ("BACKWARD", 1), "FIRST": ("ABSOLUTE", 1),
               "LAST": ("ABSOLUTE", -1), "ALL": ("FORWARD", None), "FORWARD": ("FORWARD", 1),
               "BACKWARD": ("BACKWARD", 1), "FORWARD ALL": ("FORWARD", None), "BACKWARD ALL": ("BACKWARD", None)}


def _fetch(toks, words, text, first) -> Statement:
    """FETCH / MOVE [direction] [FROM | IN] cursor, with PostgreSQL's directions (a count may be negative)."""
    rest = list(zip(words[1:], toks[1:]))
    if rest[-2:-1] and rest[-2][0] in ("FROM", "IN"):
        name = rest[-1][1].text
        rest = rest[:-2]
    elif rest:
        name = rest[-1][1].text
        rest = rest[:-1]
    else:
        raise SyntaxError(f"syntax error in {first}")
    spec = " ".join(w for w, _ in rest)
    direction, count = _DIRECTIONS.get(spec or "NEXT", (None, None))
    if direction is None:
        head, _, number = spec.partition(" ")
        if head not in ("FORWARD", "BACKWARD", "ABSOLUTE", "RELATIVE"):
            head, number = "FORWARD", spec
        count = _signed(number)
        if count is None:
            raise SyntaxError(f"syntax error in {first}: {first} [NEXT | PRIOR | FIRST | LAST | ABSOLUTE n | "
                              f"RELATIVE n | n | ALL | FORWARD [n | ALL] | BACKWARD [n | ALL]] [FROM | IN] cursor")
        direction = head
    return Statement("move" if first == "MOVE" else "fetch", text, name=name, count=count, direction=direction,
                     tag=first)


def _signed(text: str) -> int | None:
    digits = text.replace(" ", "")
    unsigned = digits[1:] if digits[:1] in ("+", "-") else digits
    return int(digits) if unsigned.isascii() and unsigned.isdigit() else None
