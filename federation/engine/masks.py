"""The hash masks: keyed hashes computed in Python, so their secret never appears in any SQL text.

A hash mask must be irreversible for someone who can guess the input space (every IPv4 address, every
phone number): it needs a secret key. A SQL macro would carry the key in its body, readable through any
catalog function a rewrite bug let through (``duckdb_functions()``, ``pg_proc``). Here the key lives in
the closure of a vectorised Python function registered on the engine's connection: the engine's catalog
shows the function's name and nothing else.

    quanta_mask_hash(VARCHAR) -> VARCHAR                 20 hex characters of keyed BLAKE2b
    quanta_mask_hash_int(VARCHAR, bits INTEGER) -> BIGINT  a keyed hash in [0, 2^(bits-1)): fits a signed
                                                          integer of that many bits (no overflow on cast)

The pipeline's secure selects call them; users cannot (they are not on the function allow-list, and the
verifier accepts them only inside a secure select the policy code built).
"""

from __future__ import annotations

import hashlib

import duckdb
import pyarrow as pa
from duckdb.sqltypes import BIGINT, INTEGER, VARCHAR

HASH = "quanta_mask_hash"
HASH_INT = "quanta_mask_hash_int"
INTEGER_BITS = {"TINYINT": 8, "UTINYINT": 8, "SMALLINT": 16, "USMALLINT": 16, "INTEGER": 32, "UINTEGER": 32,
                "BIGINT": 64, "UBIGINT": 64, "HUGEINT": 64, "UHUGEINT": 64}


def register(con: duckdb.DuckDBPyConnection, salt: str) -> None:
    """Create both functions on ``con`` with the mesh's secret ``salt``."""
    key = hashlib.blake2b(salt.encode(), digest_size=32).digest()  # any salt length -> a valid BLAKE2b key

    def mask_hash(values: pa.Array) -> pa.Array:
        return pa.array([None if v is None else hashlib.blake2b(v.encode(), key=key, digest_size=10).hexdigest()
                         for v in values.to_pylist()], pa.string())

    def mask_hash_int(values: pa.Array, bits: pa.Array) -> pa.Array:
        out = []
        for v, b in zip(values.to_pylist(), bits.to_pylist()):
            if v is None:
                out.append(None)
                continue
            digest = int.from_bytes(hashlib.blake2b(v.encode(), key=key, digest_size=8).digest(), "big")
            out.append(digest % (1 << (max(2, min(int(b or 64), 64)) - 1)))
        return pa.array(out, pa.int64())

    con.create_function(HASH, mask_hash, [VARCHAR], VARCHAR, type="arrow", side_effects=False)
    con.create_function(HASH_INT, mask_hash_int, [VARCHAR, INTEGER], BIGINT, type="arrow", side_effects=False)


def integer_bits(type_text: str) -> int:
    """Bits of a DuckDB integer type (a hashed value must fit it)."""
    return INTEGER_BITS.get(type_text.strip().upper(), 32)
