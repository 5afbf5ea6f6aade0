"""Tools for data contracts outside the mesh's load: start one from existing data (``infer``), hand it to the
tools a domain already uses (``export``: dbt, SQL DDL, JSON Schema), and review it (``lint``). They read
sources through a private locked-down DuckDB (``engine/private.py``), never the mesh's engine."""
