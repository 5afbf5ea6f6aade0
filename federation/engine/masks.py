"""The hash masks: keyed hashes whose secret never appears in any SQL text, identical on every engine.

A hash mask must be irreversible for someone who can guess the input space (every IPv4 address, every
phone number): it needs a secret key. A SQL macro would carry the key in its body, readable through any
catalog function a rewrite bug let through (``duckdb_functions()``, ``pg_proc``).

One formula, computable in Python and with Spark SQL builtins (``sha2``, ``unhex``, ``conv``, ``concat`` of
binaries), so a mask has the same value on DuckDB and on Spark (equal masks join across engines and
results do not change when a mesh moves to the cluster)::

    key    = derive_key(salt)                                  HMAC-SHA-256 inner and outer pads, hex
    mac    = HMAC-SHA-256(key, UTF-8 bytes of the value)        64 lower-case hex characters
    quanta_mask_hash(VARCHAR) -> VARCHAR                       the first 20 hex characters of mac
    quanta_mask_hash_int(VARCHAR, bits) -> BIGINT              int(mac[:16], 16) mod 2^(bits-1): fits a
                                                               signed integer of that many bits (bits in
                                                               [2, 64], no overflow on cast)

NULL stays NULL. An integer column is hashed through its decimal text (``CAST(c AS VARCHAR)``, the same
text on both engines).

DuckDB: the key lives in the closure of a vectorised Python function registered on the engine's
connection (:func:`register`): the engine's catalog shows the function's name and nothing else.

Spark: there are no Python functions on a Spark Connect server, so the key is a one-row temporary view
``quanta_mask_key(k STRING)`` (:data:`MASK_KEY_VIEW`, rows from :func:`key_table`) that the Spark backend
registers in its own session from Arrow data; :func:`spark_mask` builds the expression, which reads the key
with an uncorrelated scalar subquery (computed once per query). The key is never in SQL text.

The pipeline's secure selects call the functions by name; users cannot (they are not on the function
allow-list, and the verifier accepts them only inside a secure select the policy code built).
"""

from __future__ import annotations

import hashlib
import hmac

import duckdb
import pyarrow as pa
from duckdb.sqltypes import BIGINT, INTEGER, VARCHAR

HASH = "quanta_mask_hash"
HASH_INT = "quanta_mask_hash_int"
MASK_KEY_VIEW = "quanta_mask_key"  # Spark: the one-row temp view (k STRING) holding derive_key(salt)
MASK_KEY_COLUMN = "k"
STRING_CHARS = 20  # hex characters of a string mask (80 bits)
INT_HEX = 16  # hex characters (64 bits) an integer mask is reduced from
INTEGER_BITS = {"TINYINT": 8, "UTINYINT": 8, "SMALLINT": 16, "USMALLINT": 16, "INTEGER": 32, "UINTEGER": 32,
                "BIGINT": 64, "UBIGINT": 64, "HUGEINT": 64, "UHUGEINT": 64}
_BLOCK = 64  # SHA-256 block size: HMAC pads the key to it


def _secret(salt: str) -> bytes:
    """32 bytes from a salt of any length (domain-separated from other uses of the salt)."""
    return hashlib.blake2b(salt.encode(), digest_size=32, person=b"quanta-mask-v2").digest()


def derive_key(salt: str) -> str:
    """The key as the engines hold it: hex of HMAC's inner pad then its outer pad (2 x 64 bytes, 256 hex
    characters). Secret: never put it in SQL text or a log."""
    secret = _secret(salt).ljust(_BLOCK, b"\0")
    inner = bytes(b ^ 0x36 for b in secret)
    outer = bytes(b ^ 0x5C for b in secret)
    return (inner + outer).hex()


def _clamp(bits) -> int:
    return max(2, min(int(bits or 64), 64))


class Hasher:
    """The mask formula in Python, for one salt (the DuckDB functions and the tests use it)."""

    def __init__(self, salt: str):
        self._key = _secret(salt)

    def mac(self, value: str) -> str:
        return hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def string(self, value: str | None) -> str | None:
        return None if value is None else self.mac(value)[:STRING_CHARS]

    def integer(self, value: str | None, bits: int = 64) -> int | None:
        if value is None:
            return None
        return int(self.mac(value)[:INT_HEX], 16) % (1 << (_clamp(bits) - 1))


def register(con: duckdb.DuckDBPyConnection, salt: str) -> None:
    """Create both functions on ``con`` with the mesh's secret ``salt``."""
    hasher = Hasher(salt)

    def mask_hash(values: pa.Array) -> pa.Array:
        return pa.array([hasher.string(v) for v in values.to_pylist()], pa.string())

    def mask_hash_int(values: pa.Array, bits: pa.Array) -> pa.Array:
        return pa.array([hasher.integer(v, b) for v, b in zip(values.to_pylist(), bits.to_pylist())], pa.int64())

    con.create_function(HASH, mask_hash, [VARCHAR], VARCHAR, type="arrow", side_effects=False)
    con.create_function(HASH_INT, mask_hash_int, [VARCHAR, INTEGER], BIGINT, type="arrow", side_effects=False)


def key_table(salt: str) -> pa.Table:
    """The rows of Spark's :data:`MASK_KEY_VIEW`: one row, one column ``k`` (STRING) = ``derive_key(salt)``."""
    return pa.table({MASK_KEY_COLUMN: pa.array([derive_key(salt)], pa.string())})


def spark_mask_sql(kind: str, value_sql: str, bits: int = 64) -> str:
    """Spark SQL of a mask of ``value_sql`` (a STRING expression): ``kind`` is :data:`HASH` (STRING result) or
    :data:`HASH_INT` (BIGINT result, ``bits`` an integer literal). Reads the key from :data:`MASK_KEY_VIEW`."""
    # qualified by Spark's session catalog: a user's CTE named like the view cannot stand in for the key
    key = f"(SELECT {MASK_KEY_COLUMN} FROM system.session.{MASK_KEY_VIEW})"
    inner = f"sha2(concat(unhex(substr({key}, 1, 128)), encode({value_sql}, 'UTF-8')), 256)"
    mac = f"sha2(concat(unhex(substr({key}, 129, 128)), unhex({inner})), 256)"
    if kind == HASH:
        return f"substr({mac}, 1, {STRING_CHARS})"
    if kind == HASH_INT:
        modulus = 1 << (_clamp(bits) - 1)
        return (f"CAST(pmod(CAST(conv(substr({mac}, 1, {INT_HEX}), 16, 10) AS DECIMAL(20, 0)), "
                f"CAST({modulus} AS DECIMAL(20, 0))) AS BIGINT)")
    raise ValueError(f"unknown mask function {kind!r}")


def integer_bits(type_text: str) -> int:
    """Bits of a DuckDB integer type (a hashed value must fit it)."""
    return INTEGER_BITS.get(type_text.strip().upper(), 32)
