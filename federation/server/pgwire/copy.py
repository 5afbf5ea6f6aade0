"""COPY ... TO STDOUT: its statement read (``parse_copy``) and its rows encoded (``CopyEncoder``) in PostgreSQL's
text, CSV and binary COPY formats, one CopyData message per row as PostgreSQL sends them.

    COPY (query) TO STDOUT [[WITH] (FORMAT text|csv|binary, HEADER, DELIMITER 'c', NULL 's', QUOTE 'c',
                                   ESCAPE 'c', FORCE_QUOTE (col, ...) | *, ENCODING 'UTF8')]
    COPY table [(col, ...)] TO STDOUT ...          -- COPY (SELECT col, ... FROM table) TO STDOUT
    COPY ... TO STDOUT [WITH] [BINARY] [CSV [HEADER] [QUOTE [AS] 'c'] ...]   -- the pre-9.0 spelling (psql's \\copy)

The query itself is not run here: the server runs it like any other (``platform.query``, same principal,
purpose and audit). The server only reads: COPY FROM, and COPY to a file or a program, are refused with
SQLSTATE 25006 (read_only_sql_transaction), as a read-only PostgreSQL refuses writes.

Rows are encoded column-wise by the wire's own encoders (``types.data_rows``): a binary COPY tuple is a
DataRow body (int16 field count, then int32 length and bytes per field, -1 for NULL), so a DataRow message
with its type byte changed is a CopyData message; text and CSV values are the text format's values,
escaped (text) or quoted (CSV) with Arrow's string kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot.tokens import TokenType

from ... import errors
from . import protocol as pm
from . import types as pgt
from .session import ReadOnlyTransaction, tokens

BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
BINARY_HEADER = BINARY_SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # flags, header extension length
BINARY_TRAILER = b"\xff\xff"  # a tuple of -1 fields

_FORMATS = ("text", "csv", "binary")
_TRUE = {"true", "on", "1", "yes"}
_FALSE = {"false", "off", "0", "no"}
_WRITE = ("this server is read only: COPY only reads, to the client (COPY (query) TO STDOUT; psql: \\copy ... to "
          "'file')")


@dataclass
class Copy:
    """A COPY ... TO STDOUT statement: the query it reads and its format's options."""

    query: str
    format: str = "text"
    header: bool = False
    delimiter: str | None = None
    null: str | None = None
    quote: str | None = None
    escape: str | None = None
    force_quote: list[str] | bool = field(default_factory=list)  # True: every column (FORCE_QUOTE *)
    offset: int | None = None  # where the query starts in the statement (None: COPY table)

    def position(self, text: str, inner: tuple[int, int] | None) -> tuple[int, int] | None:
        """A (line, column) in the query as a (line, column) in the statement ``text``."""
        if inner is None or self.offset is None:
            return None
        line, column = inner
        before = text[:self.offset]
        lines = before.count("\n")
        if line == 1:
            column += self.offset - (before.rfind("\n") + 1)
        return line + lines, column

    def check(self) -> Copy:
        """PostgreSQL's rules for the options, then its defaults."""
        binary, csv = self.format == "binary", self.format == "csv"
        if binary and (self.delimiter is not None or self.null is not None or self.header):
            what = "DELIMITER" if self.delimiter is not None else "NULL" if self.null is not None else "HEADER"
            raise errors.SyntaxError(f"cannot specify {what} in BINARY mode")
        if not csv:
            for what, value in (("QUOTE", self.quote), ("ESCAPE", self.escape), ("FORCE_QUOTE", self.force_quote)):
                if value:
                    raise errors.NotSupportedError(f"COPY {what} requires CSV mode")
        if binary:
            return self
        self.delimiter = ("," if csv else "\t") if self.delimiter is None else self.delimiter
        self.null = ("" if csv else "\\N") if self.null is None else self.null
        if len(self.delimiter.encode()) != 1:
            raise errors.NotSupportedError("COPY delimiter must be a single one-byte character")
        if self.delimiter in "\r\n":
            raise errors.InvalidParameter("COPY delimiter cannot be newline or carriage return")
        if "\r" in self.null or "\n" in self.null:
            raise errors.InvalidParameter("COPY null representation cannot use newline or carriage return")
        if not csv and (self.delimiter == "\\" or self.delimiter in "abcdefghijklmnopqrstuvwxyz0123456789."):
            raise errors.NotSupportedError(f'COPY delimiter cannot be "{self.delimiter}"')
        if csv:
            self.quote = '"' if self.quote is None else self.quote
            self.escape = self.quote if self.escape is None else self.escape
            if len(self.quote.encode()) != 1:
                raise errors.NotSupportedError("COPY quote must be a single one-byte character")
            if len(self.escape.encode()) != 1:
                raise errors.NotSupportedError("COPY escape must be a single one-byte character")
            if self.delimiter == self.quote:
                raise errors.NotSupportedError("COPY delimiter and quote must be different")
            if self.delimiter in self.null:
                raise errors.NotSupportedError("COPY delimiter character must not appear in the NULL specification")
        return self


# -- the statement ------------------------------------------------------------------------------------------


def is_copy(text: str) -> bool:
    toks = tokens(text)
    return bool(toks) and toks[0].text.upper() == "COPY"


def parse_copy(text: str) -> Copy:
    """The COPY statement ``text``: a ``Copy`` to run, or an error (25006 for COPY FROM or to a file)."""
    toks = [t for t in tokens(text) if t.token_type != TokenType.SEMICOLON]
    words = [t.text.upper() if t.token_type not in (TokenType.STRING, TokenType.IDENTIFIER) else None for t in toks]
    i = 1
    if words[i:i + 1] == ["BINARY"]:  # COPY BINARY table (before 7.3)
        i += 1
        old_binary = True
    else:
        old_binary = False
    if i < len(toks) and toks[i].token_type == TokenType.L_PAREN:
        end = _closing(toks, i)
        offset = toks[i].end + 1
        query = text[offset:toks[end].start]
        offset += len(query) - len(query.lstrip())
        query = query.strip()
        i = end + 1
    else:
        start = i
        while i < len(toks) and (words[i] not in ("TO", "FROM") or toks[i].token_type == TokenType.IDENTIFIER) and \
                toks[i].token_type != TokenType.L_PAREN:
            i += 1
        if i == start:
            raise errors.SyntaxError("syntax error in COPY: COPY (query) TO STDOUT or COPY table TO STDOUT")
        table = text[toks[start].start:toks[i - 1].end + 1]
        columns = "*"
        if i < len(toks) and toks[i].token_type == TokenType.L_PAREN:
            end = _closing(toks, i)
            columns = text[toks[i].end + 1:toks[end].start].strip() or "*"
            i = end + 1
        query = f"SELECT {columns} FROM {table}"
        offset = None
    if i >= len(toks) or words[i] not in ("TO", "FROM"):
        raise errors.SyntaxError("syntax error in COPY: TO STDOUT expected")
    if words[i] == "FROM":
        raise ReadOnlyTransaction(f"cannot execute COPY FROM in a read-only transaction: {_WRITE}")
    i += 1
    if i >= len(toks):
        raise errors.SyntaxError("syntax error in COPY: TO STDOUT expected")
    if words[i] != "STDOUT":
        if words[i] == "PROGRAM" or toks[i].token_type == TokenType.STRING:
            raise ReadOnlyTransaction(f"cannot execute COPY to a file or program in a read-only transaction: "
                                      f"{_WRITE}")
        raise errors.SyntaxError(f'syntax error in COPY at "{toks[i].text}": TO STDOUT expected')
    i += 1
    if words[i:i + 1] == ["WITH"]:
        i += 1
    copy = Copy(query, format="binary" if old_binary else "text", offset=offset)
    if i < len(toks) and toks[i].token_type == TokenType.L_PAREN:
        end = _closing(toks, i)
        _options(copy, toks[i + 1:end], words[i + 1:end])
        i = end + 1
    else:
        i = _old_options(copy, toks, words, i)
    if i < len(toks):
        raise errors.SyntaxError(f'syntax error in COPY at "{toks[i].text}"')
    if not copy.query:
        raise errors.SyntaxError("syntax error in COPY: an empty query")
    return copy.check()


def _closing(toks, i: int) -> int:
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].token_type == TokenType.L_PAREN:
            depth += 1
        elif toks[j].token_type == TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                return j
    raise errors.SyntaxError("syntax error in COPY: a parenthesis is not closed")


def _value(tok) -> str:
    return tok.text  # a string's or identifier's text, unquoted by the tokenizer


def _options(copy: Copy, toks, words) -> None:
    """The parenthesised options: ``name [value]`` separated by commas."""
    groups, current = [], []
    depth = 0
    for t, w in zip(toks, words):
        if t.token_type == TokenType.COMMA and depth == 0:
            groups.append(current)
            current = []
            continue
        depth += (t.token_type == TokenType.L_PAREN) - (t.token_type == TokenType.R_PAREN)
        current.append((t, w))
    groups.append(current)
    seen = set()
    for group in groups:
        if not group:
            raise errors.SyntaxError("syntax error in COPY options")
        name = group[0][0].text.lower()
        if name in seen:
            raise errors.SyntaxError("conflicting or redundant options in COPY")
        seen.add(name)
        rest = group[1:]
        value = _value(rest[0][0]) if len(rest) == 1 else None
        if name == "format":
            if value is None or value.lower() not in _FORMATS:
                raise errors.InvalidParameter(f'COPY format "{value}" not recognized')
            copy.format = value.lower()
        elif name == "header":
            if value is not None and value.lower() == "match":
                raise errors.NotSupportedError("cannot use \"match\" with HEADER in COPY TO")
            copy.header = _boolean(name, value)
        elif name in ("delimiter", "null", "quote", "escape"):
            if value is None or rest[0][0].token_type not in (TokenType.STRING, TokenType.BYTE_STRING,
                                                               TokenType.NATIONAL_STRING):
                raise errors.SyntaxError(f"COPY {name} needs a string: {name.upper()} 'x'")
            setattr(copy, name, value)
        elif name == "force_quote":
            copy.force_quote = True if [w for _, w in rest] == ["*"] else _names([t for t, _ in rest])
        elif name == "encoding":
            if value is None or value.upper().replace("-", "") not in ("UTF8", "UNICODE"):
                raise errors.NotSupportedError(f"COPY encoding {value!r}: this server sends UTF8 only")
        elif name in ("force_not_null", "force_null", "freeze", "default", "on_error", "log_verbosity"):
            raise errors.NotSupportedError(f"COPY {name.upper()} is only available using COPY FROM")
        else:
            raise errors.SyntaxError(f'option "{name}" not recognized')
    if "header" in seen and copy.header and copy.format == "binary":
        raise errors.SyntaxError("cannot specify HEADER in BINARY mode")


def _boolean(name: str, value: str | None) -> bool:
    if value is None or value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise errors.InvalidParameter(f"{name} requires a Boolean value")


def _names(toks) -> list[str]:
    """Column names of ``(a, "B")``."""
    return [t.text if t.token_type == TokenType.IDENTIFIER else t.text.lower() for t in toks
            if t.token_type in (TokenType.IDENTIFIER, TokenType.VAR) or (t.text.isidentifier())]


def _old_options(copy: Copy, toks, words, i: int) -> int:
    """The options before 9.0: BINARY, CSV, HEADER, DELIMITER [AS] 'c', NULL [AS] 's', QUOTE [AS] 'c',
    ESCAPE [AS] 'c', FORCE QUOTE col, ... | *."""
    while i < len(toks):
        w = words[i]
        if w == "BINARY":
            copy.format = "binary"
            i += 1
        elif w == "CSV":
            copy.format = "csv"
            i += 1
        elif w == "HEADER":
            copy.header = True
            i += 1
        elif w in ("DELIMITER", "NULL", "QUOTE", "ESCAPE"):
            i += 1
            if words[i:i + 1] == ["AS"]:
                i += 1
            if i >= len(toks) or toks[i].token_type not in (TokenType.STRING, TokenType.BYTE_STRING):
                raise errors.SyntaxError(f"COPY {w} needs a string: {w} [AS] 'x'")
            setattr(copy, w.lower(), toks[i].text)
            i += 1
        elif w == "FORCE" and words[i + 1:i + 2] == ["QUOTE"]:
            i += 2
            if words[i:i + 1] == ["*"]:
                copy.force_quote = True
                i += 1
                continue
            names = []
            while i < len(toks):
                names.append(toks[i])
                i += 1
                if i < len(toks) and toks[i].token_type == TokenType.COMMA:
                    i += 1
                else:
                    break
            copy.force_quote = _names(names)
        elif w == "ENCODING":
            i += 1
            if i >= len(toks) or toks[i].text.upper().replace("-", "") not in ("UTF8", "UNICODE"):
                raise errors.NotSupportedError("COPY encoding: this server sends UTF8 only")
            i += 1
        elif w == "OIDS":
            raise errors.NotSupportedError("COPY OIDS is not supported: tables have no OIDs")
        else:
            return i
    return i


# -- the rows -------------------------------------------------------------------------------------------------


class CopyEncoder:
    """CopyData messages of a result's record batches in the format of a ``Copy``."""

    def __init__(self, copy: Copy, schema: pa.Schema, timezone: str = "UTC"):
        self.copy = copy
        self.schema = schema
        self.timezone = timezone
        self.binary = copy.format == "binary"
        self._signed = False  # binary: the signature is sent in the first CopyData, with a row (as PostgreSQL does)
        forced = copy.force_quote
        self.forced = [forced is True or (isinstance(forced, list) and f.name in forced) for f in schema]
        if isinstance(forced, list):
            missing = [c for c in forced if c not in schema.names]
            if missing:
                raise errors.UnknownObject(f'FORCE_QUOTE column "{missing[0]}" is not referenced by COPY')

    def response(self) -> bytes:
        """CopyOutResponse: the overall format and each column's."""
        return pm.copy_out_response(1 if self.binary else 0, len(self.schema))

    def header(self) -> bytes:
        """The CopyData of the header line, if any (binary: the signature goes with the first row)."""
        if self.binary or not self.copy.header:
            return b""
        names = [self._text_value(pa.array([name], pa.large_string()), i, None) for i, name in
                 enumerate(self.schema.names)]
        return pm.copy_data(self._line(names)[0].as_py())

    def trailer(self) -> bytes:
        if not self.binary:
            return b""
        return pm.copy_data(BINARY_TRAILER if self._signed else BINARY_HEADER + BINARY_TRAILER)

    def rows(self, batch: pa.RecordBatch) -> bytes | memoryview:
        """One CopyData message per row of ``batch``, in one buffer."""
        if batch.num_rows == 0:
            return b""
        if self.binary:
            buffer, offsets = pgt.data_rows(batch, [1] * batch.num_columns, self.timezone)
            data = np.frombuffer(buffer, dtype=np.uint8, count=int(offsets[-1]))[int(offsets[0]):]
            data = data.copy()  # DataRow 'D' -> CopyData 'd': the same length and body
            data[offsets[:-1] - offsets[0]] = ord("d")
            if not self._signed:  # psycopg and libpq readers expect the signature in the first row's message
                self._signed = True
                first = int(offsets[1] - offsets[0])
                return b"d" + (first - 1 + len(BINARY_HEADER)).to_bytes(4, "big") + BINARY_HEADER + \
                    data[5:].tobytes()
            return memoryview(data)
        values = [self._text_value(_text(batch.column(i), self.timezone), i, batch.column(i).is_valid())
                  for i in range(batch.num_columns)]
        lines = self._line(values)
        lengths = pc.binary_length(lines).to_numpy(zero_copy_only=False).astype(np.int64)
        header = np.empty(len(lengths), dtype=[("kind", "S1"), ("len", ">i4")])
        header["kind"] = b"d"
        header["len"] = lengths + 4
        heads = pa.FixedSizeBinaryArray.from_buffers(pa.binary(5), len(lengths), [None, pa.py_buffer(header.tobytes())])
        messages = pc.binary_join_element_wise(heads.cast(pa.large_binary()), lines, pa.scalar(b"", pa.large_binary()))
        start = messages.offset
        offsets = np.frombuffer(messages.buffers()[1], dtype=np.int64, count=len(messages) + 1 + start)
        return memoryview(messages.buffers()[2])[int(offsets[start]):int(offsets[-1])]

    def _text_value(self, values: pa.Array, i: int, valid: pa.Array | None) -> pa.Array:
        """A column's values as they appear in a line: escaped (text) or quoted where needed (CSV), NULLs
        (where ``valid`` is false) as the NULL string; ``valid`` None: a header's name (never forced)."""
        copy = self.copy
        values = values.cast(pa.large_string())
        if copy.format == "text":
            if pc.any(pc.match_substring_regex(values, "[" + _re_class("\\\x08\x0c\n\r\t\x0b" + copy.delimiter) +
                                               "]")).as_py():
                for raw, escaped in (("\\", "\\\\"), ("\x08", "\\b"), ("\x0c", "\\f"), ("\n", "\\n"), ("\r", "\\r"),
                                     ("\t", "\\t"), ("\x0b", "\\v")):
                    values = pc.replace_substring(values, raw, escaped)
                if copy.delimiter not in "\\\x08\x0c\n\r\t\x0b":
                    values = pc.replace_substring(values, copy.delimiter, "\\" + copy.delimiter)
        else:
            quote, escape = copy.quote, copy.escape
            needs = pc.or_(pc.match_substring_regex(values, "[" + _re_class(copy.delimiter + quote + "\r\n") + "]"),
                           pc.equal(values, copy.null))  # a value spelled like NULL is quoted
            if self.forced[i] and valid is not None:
                needs = pc.or_(needs, pc.is_valid(values))
            doubled = values
            if escape != quote:
                doubled = pc.replace_substring(doubled, escape, escape + escape)
            doubled = pc.replace_substring(doubled, quote, escape + quote)
            quoted = pc.binary_join_element_wise(pa.scalar(quote, pa.large_string()), doubled,
                                                 pa.scalar(quote, pa.large_string()), pa.scalar("", pa.large_string()))
            values = pc.if_else(pc.fill_null(needs, False), quoted, values)
        if valid is None:
            return values
        return pc.if_else(valid, values, pa.scalar(copy.null, pa.large_string()))

    def _line(self, values: list[pa.Array]) -> pa.Array:
        joined = pc.binary_join_element_wise(*values, pa.scalar(self.copy.delimiter, pa.large_string()))
        return pc.binary_join_element_wise(joined, pa.scalar("\n", pa.large_string()),
                                           pa.scalar("", pa.large_string())).cast(pa.large_binary())


def _re_class(chars: str) -> str:
    return "".join("\\" + c if c in "\\]^-[" else c for c in chars)


def _text(array: pa.Array, timezone: str) -> pa.Array:
    """A column in PostgreSQL's text output format (NULLs as empty values: masked by the caller)."""
    batch = pa.record_batch([array], names=["c"])
    buffer, offsets = pgt.data_rows(batch, [0], timezone)  # DataRow: 'D', int32, int16, then int32 + value
    n = len(array)
    rows = pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets.astype(np.int64)),
                                                                   buffer])
    longest = int(np.diff(offsets).max()) if n else 11
    return pc.binary_slice(rows, 11, longest).cast(pa.large_string())  # (no stop: Arrow 26 fails)
