"""The ``quanta`` command.

    quanta validate [MESH]              every problem of a mesh, exit 1 when there is an error
    quanta query "SQL" [--format ...]   run a query (a table for people; csv, json, parquet for machines)
    quanta describe NAME                the dictionary of a quantum or a dataset
    quanta generate [MESH] --scale N    (re)generate the demo mesh's data
    quanta demo                         generate the demo data if needed, validate, and tour the mesh
    quanta serve [MESH] [--port P]      the HTTP service: query API, open dictionary, metrics

Errors are one clear message on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import functools
import io
import json
import sys
import time
from pathlib import Path

import click

from . import errors
from .config import default_mesh


def _fail(message: str, code: int = 1) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def friendly(fn):
    """Turn every expected failure into one line and an exit status."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except errors.CatalogError as e:
            click.secho(f"error: {e.message}", fg="red", err=True)
            for p in e.problems:
                click.echo(f"  {p}", err=True)
            sys.exit(1)
        except errors.Error as e:
            _fail(str(e))
        except (OSError, ValueError) as e:
            _fail(str(e))
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper


mesh_option = click.option("--mesh", "mesh", envvar="QUANTA_MESH", default=None, metavar="PATH",
                           help="The mesh folder (default: $QUANTA_MESH or catalogs/greatparts).")
user_option = click.option("--user", "-u", default=None, envvar="QUANTA_USER", help="The principal to query as.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="quanta-federation", prog_name="quanta")
def main() -> None:
    """Quanta: SQL over a mesh of data quanta (ODPS products, ODCS contracts), governed on every query."""


# -- validate ----------------------------------------------------------------------------------------


@main.command()
@click.argument("mesh_path", required=False, metavar="[MESH]")
@mesh_option
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
@friendly
def validate(mesh_path: str | None, mesh: str | None, as_json: bool) -> None:
    """Check a mesh: JSON Schemas, mesh rules, data against contracts. Exit 1 on any error."""
    from .platform import Platform

    from .governance.coverage import coverage

    path = mesh_path or mesh or default_mesh()
    platform = Platform(path)
    m = platform.mesh
    errs = [p for p in m.problems if p.severity == "error"]
    warns = [p for p in m.problems if p.severity != "error"]
    covered = coverage(platform.state.governance, m, platform.lineage.edges)
    holes = [c for c in covered if c.coverage == "warning"]
    if as_json:
        click.echo(json.dumps({
            "mesh": m.name, "quanta": sorted(q.name for q in m.quanta.values()),
            "excluded": m.excluded, "problems": [
                {"severity": p.severity, "file": p.file, "path": p.path, "line": p.line, "quantum": p.quantum,
                 "message": p.message} for p in m.problems],
            "policy_coverage": {
                "covered": {pol.name: sum(1 for c in covered if c.policy == pol.name and c.coverage == "covered")
                            for pol in platform.state.governance.policies},
                "warnings": [{"policy": c.policy, "quantum": c.quantum, "dataset": c.dataset, "column": c.column,
                              "reason": c.reason, "like": c.like, "message": c.detail} for c in holes]}}, indent=2))
    else:
        datasets = sum(len(q.datasets) for q in m.quanta.values())
        click.echo(f"mesh {m.name}: {len(m.quanta)} quanta, {datasets} datasets loaded in "
                   f"{platform.state.load_seconds:.2f} s")
        for p in errs:
            click.secho(f"  error   {p}", fg="red")
        for p in warns:
            click.secho(f"  warning {p}", fg="yellow")
        for name, why in sorted(m.excluded.items()):
            click.secho(f"  left out: quantum {name}", fg="red")
        _print_coverage(platform.state.governance.policies, covered, holes)
        if not errs:
            click.secho("valid" + (f" ({len(warns)} warnings)" if warns else "")
                        + (f" ({len(holes)} policy coverage warnings)" if holes else ""), fg="green")
    if errs:
        sys.exit(1)


def _print_coverage(policies, covered, holes) -> None:
    """The policy coverage section of ``validate``: what each policy covers, then its holes."""
    if not policies:
        return
    click.echo(f"policy coverage ({len(policies)} policies, {len(holes)} warnings; system.policy_coverage):")
    for pol in policies:
        mine = [c for c in covered if c.policy == pol.name and c.coverage == "covered"]
        what = "dataset" if mine and mine[0].column is None else "column"
        click.echo(f"  {pol.name:<28} {pol.kind:<10} {len(mine):>4} {what}{'' if len(mine) == 1 else 's'}")
    for c in holes:
        click.secho(f"  coverage warning ({c.policy}, {c.reason}): {c.detail}", fg="yellow")


# -- query -------------------------------------------------------------------------------------------


@main.command()
@click.argument("sql")
@mesh_option
@user_option
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "ndjson", "parquet"]), default="table",
              show_default=True, help="Output format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file instead of standard output.")
@click.option("--max-rows", default=40, show_default=True, help="Rows shown in table format.")
@click.option("--param", "-p", multiple=True, help="A query parameter for each ? in order (repeatable).")
@click.option("--purpose", default=None, help="The purpose of the query (contracts may limit purposes).")
@friendly
def query(sql: str, mesh: str | None, user: str | None, fmt: str, output: str | None, max_rows: int,
          param: tuple[str, ...], purpose: str | None) -> None:
    """Run one SQL query against the mesh, as --user, for --purpose."""
    from .connection import connect

    conn = connect(mesh, user=user, purpose=purpose)
    started = time.perf_counter()
    result = conn.sql(sql, list(param) if param else None)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        if not output:
            _fail("--format parquet needs --output FILE")
        with pq.ParquetWriter(output, result.schema) as writer:
            for batch in result.record_batches():
                writer.write_batch(batch)
        click.echo(f"wrote {result.rows_read} rows to {output}", err=True)
        return
    if fmt == "table":
        table = result.arrow()
        text = format_table(table, max_rows)
        elapsed = time.perf_counter() - started
        text += f"\n({table.num_rows} row{'s' if table.num_rows != 1 else ''}, {elapsed:.3f} s)\n"
        for w in result.warnings:
            text += f"warning: {w}\n"
        _emit(text, output)
        return
    stream = open(output, "w", newline="", encoding="utf-8") if output else sys.stdout
    try:
        write_rows(result, fmt, stream)
    finally:
        if output:
            stream.close()


def write_rows(result, fmt: str, stream) -> None:
    import csv

    if fmt == "csv":
        w = csv.writer(stream)
        w.writerow(result.columns)
        for batch in result.record_batches():
            cols = [c.to_pylist() for c in batch.columns]
            w.writerows(zip(*cols))
    else:
        names = result.columns
        rows = []
        for batch in result.record_batches():
            cols = [c.to_pylist() for c in batch.columns]
            for row in zip(*cols):
                record = dict(zip(names, row))
                if fmt == "ndjson":
                    stream.write(json.dumps(record, default=str) + "\n")
                else:
                    rows.append(record)
        if fmt == "json":
            json.dump(rows, stream, default=str, indent=1)
            stream.write("\n")


def _emit(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


def format_table(table, max_rows: int = 40, max_width: int = 40) -> str:
    """A plain text table, like DuckDB's CLI: header, types, rows (truncated), aligned."""
    names = table.column_names
    from .result import sql_type

    types = [sql_type(f.type).lower() for f in table.schema]
    shown = table.slice(0, max_rows)
    cols = [c.to_pylist() for c in shown.columns]
    rows = list(zip(*cols)) if cols else []

    def cell(v) -> str:
        if v is None:
            return "NULL"
        s = str(v).replace("\n", " ")
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    body = [[cell(v) for v in row] for row in rows]
    widths = [max([len(n), len(t)] + [len(r[i]) for r in body]) for i, (n, t) in enumerate(zip(names, types))]
    numeric = [t.split("(")[0] in ("bigint", "integer", "smallint", "tinyint", "double", "float", "decimal",
                                   "hugeint", "ubigint") for t in types]

    def line(values, right=None):
        parts = []
        for i, v in enumerate(values):
            parts.append(v.rjust(widths[i]) if right and right[i] else v.ljust(widths[i]))
        return "│ " + " │ ".join(parts) + " │"

    sep = lambda l, m, r: l + m.join("─" * (w + 2) for w in widths) + r  # noqa: E731
    out = io.StringIO()
    out.write(sep("┌", "┬", "┐") + "\n")
    out.write(line(names) + "\n")
    out.write(line(types) + "\n")
    out.write(sep("├", "┼", "┤") + "\n")
    for r in body:
        out.write(line(r, numeric) + "\n")
    if table.num_rows > max_rows:
        out.write(line(["…"] * len(names)) + "\n")
    out.write(sep("└", "┴", "┘"))
    return out.getvalue()


# -- describe ----------------------------------------------------------------------------------------


@main.command()
@click.argument("name")
@mesh_option
@friendly
def describe(name: str, mesh: str | None) -> None:
    """The dictionary of a quantum (NAME) or a dataset (QUANTUM.DATASET)."""
    from .platform import Platform

    platform = Platform.open(mesh or default_mesh())
    m = platform.mesh
    parts = name.split(".")
    q = m.quanta.get(parts[0].lower())
    if q is None:
        if parts[0].lower() in m.excluded:
            _fail(f"quantum {parts[0]} is unavailable: {m.excluded[parts[0].lower()]}")
        _fail(f"there is no quantum {parts[0]!r}; quanta: {', '.join(sorted(m.quanta))}")
    if len(parts) == 1:
        click.secho(f"{q.name}", bold=True, nl=False)
        click.echo(f"  ({q.domain} domain, {q.status}, version {q.version or '-'})")
        if q.description:
            click.echo(f"  {q.description}")
        click.echo(f"  owners: {', '.join(q.owners) or '-'}   product file: {q.file}")
        for p in q.ports:
            arrow = "<-" if p.direction == "input" else "->"
            src = f" from {p.source_quantum}" if p.source_quantum else ""
            click.echo(f"  {p.direction:6} port {p.name or '-'} {arrow} contract {p.contract_id}{src}")
        click.echo("  datasets:")
        for ds in q.datasets.values():
            click.echo(f"    {q.name}.{ds.name:30} {ds.kind:8} {len(ds.columns):3} columns  {ds.description or ''}")
        return
    if len(parts) != 2:
        _fail("name a quantum (QUANTUM) or a dataset (QUANTUM.DATASET)")
    ds = q.datasets.get(parts[1].lower())
    if ds is None:
        _fail(f"quantum {q.name} has no dataset {parts[1]!r}; it has: {', '.join(sorted(q.datasets))}")
    contract = m.contracts.get(ds.contract_id)
    click.secho(ds.qualified_name, bold=True, nl=False)
    click.echo(f"  ({ds.kind} dataset, contract {ds.contract_id} v{contract.version if contract else '?'}, "
               f"{contract.status if contract else '?'})")
    if ds.description:
        click.echo(f"  {ds.description}")
    if ds.source:
        click.echo(f"  data: {ds.source.kind} {ds.source.location}" + (f" table {ds.source.table}"
                                                                       if ds.source.table else ""))
    if ds.sql:
        click.echo(f"  sql: {' '.join(ds.sql.split())}")
        click.echo(f"  reads: {', '.join(f'{a}.{b}' for a, b in ds.reads)}")
    import pyarrow as pa

    rows = [(c.ordinal, c.name, c.data_type, c.classification or "", ",".join(c.tags),
             ("PK " if c.primary_key else "") + ("required " if c.required else "") + ("unique" if c.unique else ""),
             c.description or "") for c in ds.columns]
    names = ["#", "column", "type", "classification", "tags", "constraints", "description"]
    table = pa.table({n: [str(r[i]) for r in rows] for i, n in enumerate(names)})
    click.echo(format_table(table, max_rows=10_000, max_width=60))


# -- lineage and contracts ----------------------------------------------------------------------------


@main.command("lineage")
@click.argument("dataset")
@mesh_option
@click.option("--svg", "svg", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the lineage, down to columns, as an SVG picture.")
@friendly
def lineage_cmd(dataset: str, mesh: str | None, svg: str | None) -> None:
    """The column lineage of a dataset (QUANTUM.DATASET): where each column comes from, and how."""
    import pyarrow as pa

    from .lineage.svg import lineage_svg
    from .platform import Platform

    platform = Platform.open(mesh or default_mesh())
    m = platform.mesh
    q, _, d = dataset.partition(".")
    ds = m.dataset(q, d) if d else None
    if ds is None:
        _fail(f"there is no dataset {dataset!r}; name it QUANTUM.DATASET")
    edges = platform.lineage.edges
    mine = [e for e in edges if (e.target_quantum.lower(), e.target_dataset.lower()) == (ds.quantum.lower(), ds.name.lower())]
    used = [e for e in edges if (e.source_quantum.lower(), e.source_dataset.lower()) == (ds.quantum.lower(), ds.name.lower())]
    click.secho(f"{ds.qualified_name} ({ds.kind})", bold=True)
    if mine:
        table = pa.table({"column": [e.target_column for e in mine],
                          "from": [f"{e.source_quantum}.{e.source_dataset}.{e.source_column}" for e in mine],
                          "transformation": [e.transformation for e in mine]})
        click.echo(format_table(table, max_rows=10_000, max_width=60))
    if used:
        click.echo("read by: " + ", ".join(sorted({f"{e.target_quantum}.{e.target_dataset}" for e in used})))
    if not mine and not used:
        click.echo("no lineage: a source dataset that no derived dataset reads")
    if svg:
        Path(svg).write_text(lineage_svg(m, edges, ds), encoding="utf-8")
        click.echo(f"wrote {svg}", err=True)


@main.group()
def contract() -> None:
    """Data contracts: the effective (inherited) contract of a quantum."""


@contract.command("effective")
@click.argument("quantum")
@mesh_option
@friendly
def contract_effective(quantum: str, mesh: str | None) -> None:
    """Print QUANTUM's contracts as ODCS YAML with what they inherit along lineage filled in, and the
    quality rules in force (those set through the control plane replace the file's)."""
    import yaml

    from .lineage.inheritance import effective_contract
    from .onboarding.contracts import with_rules_in_force
    from .platform import Platform

    platform = Platform.open(mesh or default_mesh())
    if quantum.lower() not in platform.mesh.quanta:
        _fail(f"there is no quantum {quantum!r}; quanta: {', '.join(sorted(platform.mesh.quanta))}")
    for doc in effective_contract(platform.mesh, quantum):
        doc = with_rules_in_force(platform, doc.get("id"), doc)
        click.echo("---")
        click.echo(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), nl=False)


@main.group("openlineage")
def openlineage_group() -> None:
    """OpenLineage events (configured in mesh.yaml settings.openlineage: file and/or url)."""


@openlineage_group.command("emit")
@mesh_option
@click.option("--file", "file", default=None, help="Append the events to this NDJSON file (overrides the mesh).")
@click.option("--url", "url", default=None, help="POST the events to this OpenLineage endpoint (overrides the mesh).")
@friendly
def openlineage_emit(mesh: str | None, file: str | None, url: str | None) -> None:
    """Emit the mesh's lineage: one run per derived dataset with its column lineage."""
    from .lineage.openlineage import OpenLineage
    from .platform import Platform

    platform = Platform.open(mesh or default_mesh())
    config = {"file": file, "url": url} if (file or url) else platform.mesh.settings.get("openlineage")
    emitter = OpenLineage(platform.mesh, config)
    if not emitter.enabled:
        _fail("no OpenLineage destination: give --file or --url, or settings.openlineage in mesh.yaml")
    n = emitter.emit_mesh_lineage(platform.lineage.edges)
    click.echo(f"emitted {n} lineage events ({', '.join(k for k in ('file', 'url') if config.get(k))})")


# -- access requests ---------------------------------------------------------------------------------


@main.group()
def access() -> None:
    """Access requests: ask for a dataset; approvers grant it for a while, or deny it."""


@access.command("request")
@click.argument("dataset")
@mesh_option
@user_option
@click.option("--purpose", default=None, help="Why you need the data.")
@click.option("--days", default=90, show_default=True, type=int, help="How long the access should last.")
@friendly
def access_request(dataset: str, mesh: str | None, user: str | None, purpose: str | None, days: int) -> None:
    """Ask for read access to DATASET (QUANTUM.DATASET)."""
    from .platform import Platform

    platform = Platform.open(mesh or default_mesh())
    req = platform.request_access(platform.principal(user), dataset, purpose, days)
    ds = platform.mesh.dataset(req.quantum, req.dataset)
    who = ", ".join(platform.state.governance.approvers(ds)) or "the quantum's owners"
    click.echo(f"access request {req.request_id}: {dataset} for {days} days, pending; approvers: {who}")


@access.command("list")
@mesh_option
@user_option
@friendly
def access_list(mesh: str | None, user: str | None) -> None:
    """Your requests, and those you may approve (all of them for auditors)."""
    from .connection import connect

    conn = connect(mesh, user=user)
    click.echo(format_table(conn.sql(
        "select request_id, principal, quantum || '.' || dataset as dataset, purpose, days, status, decided_by, "
        "expires from system.access_requests order by request_id").arrow(), max_rows=10_000))


def _decide(request_id: int, mesh: str | None, user: str | None, approve: bool, days: int | None,
            reason: str | None) -> None:
    from .platform import Platform

    platform = Platform.open(mesh or default_mesh())
    req = platform.decide_access(platform.principal(user), request_id, approve, days, reason)
    if approve:
        click.echo(f"approved {req.request_id}: {req.principal} may read {req.quantum}.{req.dataset} until {req.expires}")
    else:
        click.echo(f"denied {req.request_id}")


@access.command("approve")
@click.argument("request_id", type=int)
@mesh_option
@user_option
@click.option("--days", default=None, type=int, help="Grant for this many days (default: as requested).")
@friendly
def access_approve(request_id: int, mesh: str | None, user: str | None, days: int | None) -> None:
    """Approve a pending request: a grant with an expiry, effective at once."""
    _decide(request_id, mesh, user, True, days, None)


@access.command("deny")
@click.argument("request_id", type=int)
@mesh_option
@user_option
@click.option("--reason", default=None)
@friendly
def access_deny(request_id: int, mesh: str | None, user: str | None, reason: str | None) -> None:
    """Deny a pending request."""
    _decide(request_id, mesh, user, False, None, reason)


# -- tokens --------------------------------------------------------------------------------------------


@main.group()
def token() -> None:
    """Manage the bearer tokens of principals (stored only as salted hashes)."""


@token.command("create")
@click.argument("user")
@mesh_option
@click.option("--expires", "expires", type=float, default=None, metavar="DAYS", help="Expire after DAYS days.")
@friendly
def token_create(user: str, mesh: str | None, expires: float | None) -> None:
    """Create a token for USER; the token is printed once, on the last line."""
    from .platform import Platform

    platform = Platform(mesh or default_mesh())
    if user not in platform.state.governance.principals:
        known = ", ".join(sorted(platform.state.governance.principals)) or "none"
        _fail(f"there is no principal {user!r} in the mesh's governance (principals: {known})")
    if expires is not None and expires <= 0:
        _fail("--expires must be a positive number of days")
    secret, info = platform.tokens.create(user, expires)
    try:  # a SCRAM verifier so the token is also a PostgreSQL password (never the token itself)
        from .server.pgwire.auth import register_token
    except ImportError:
        register_token = None
    if register_token is not None:
        register_token(platform, secret)
    until = info.expires_at.strftime("%Y-%m-%d %H:%M UTC") if info.expires_at else "never"
    click.echo(f"token {info.token_id} for {user}, expires {until}. It is shown once: keep it secret.", err=True)
    click.echo(secret)


@token.command("list")
@mesh_option
@friendly
def token_list(mesh: str | None) -> None:
    """List tokens (ids, principals, dates, status; never the secrets)."""
    import pyarrow as pa

    from .platform import Platform

    platform = Platform(mesh or default_mesh())
    infos = platform.tokens.list()
    fmt = lambda d: d.strftime("%Y-%m-%d %H:%M") if d else ""  # noqa: E731
    table = pa.table({
        "token_id": [i.token_id for i in infos], "principal": [i.principal for i in infos],
        "created": [fmt(i.created_at) for i in infos], "expires": [fmt(i.expires_at) for i in infos],
        "status": [i.status for i in infos]})
    click.echo(format_table(table, max_rows=10_000))


@token.command("revoke")
@click.argument("token_id")
@mesh_option
@friendly
def token_revoke(token_id: str, mesh: str | None) -> None:
    """Revoke a token by its id (or the token itself)."""
    from .platform import Platform

    platform = Platform(mesh or default_mesh())
    if not platform.tokens.revoke(token_id):
        _fail(f"no active token {token_id!r}")
    click.echo(f"revoked {token_id}")


# -- serve ---------------------------------------------------------------------------------------------


@main.command()
@click.argument("mesh_path", required=False, metavar="[MESH]")
@mesh_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="The HTTP port (0: any free port).")
@click.option("--threads", default=16, show_default=True, type=int, help="Worker threads of the HTTP server.")
@click.option("--pg-port", default=None, type=int, help="Also serve the PostgreSQL wire protocol on this port.")
@friendly
def serve(mesh_path: str | None, mesh: str | None, host: str, port: int, threads: int, pg_port: int | None) -> None:
    """Serve the mesh over HTTP: the query API, the open dictionary (HTML and JSON), health and metrics."""
    from .platform import Platform
    from .server.http import Server, create_app

    path = Path(mesh_path or mesh or default_mesh())
    if not (mesh_path or mesh) and (path / "mesh.yaml").exists() and not (path / "data").exists():
        from . import demo as demo_data  # the demo mesh on a fresh clone: generate its data first

        click.echo(f"generating the demo data under {path / 'data'} ...", err=True)
        demo_data.generate(path, progress=lambda msg: click.echo(f"  {msg}", err=True))
    platform = Platform.open(path)
    server = Server(create_app(platform), host=host, port=port, threads=threads)
    pg = None
    if pg_port is not None:
        try:
            from .server.pgwire import PgServer
        except ImportError:
            _fail("the PostgreSQL interface is not available in this installation")
        pg = PgServer(platform, host, pg_port)
        pg.start()
    m = platform.mesh
    click.echo(f"mesh {m.name}: {len(m.quanta)} quanta, loaded in {platform.state.load_seconds:.2f} s")
    click.echo(f"dictionary  {server.url}/")
    click.echo(f"API         {server.url}/api/v1/  (POST /api/v1/query with a bearer token; "
               f"description at /api/v1/openapi.json)")
    if pg is not None:
        click.echo(f"PostgreSQL  {host}:{pg.port}")
    click.echo("press Ctrl+C to stop", err=True)
    import signal
    import threading

    def _stop(signum, frame):  # SIGTERM stops as cleanly as Ctrl+C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.start()
        threading.Event().wait()
    finally:
        server.stop()
        if pg is not None:
            pg.stop()


@main.command()
@click.argument("mesh_path", required=False, metavar="[MESH]")
@mesh_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=5433, show_default=True, type=int, help="The PostgreSQL port (0: any free port).")
@click.option("--tls-cert", default=None, metavar="FILE", help="Certificate for TLS (SSLRequest answered 'S').")
@click.option("--tls-key", default=None, metavar="FILE", help="The certificate's private key.")
@friendly
def pgserve(mesh_path: str | None, mesh: str | None, host: str, port: int, tls_cert: str | None,
            tls_key: str | None) -> None:
    """Serve the mesh over the PostgreSQL wire protocol only (psql, JDBC, BI tools; passwords are tokens)."""
    from .platform import Platform
    from .server.pgwire import PgServer

    platform = Platform.open(Path(mesh_path or mesh or default_mesh()))
    pg = PgServer(platform, host, port, tls_cert=tls_cert, tls_key=tls_key)
    pg.start()
    click.echo(f"PostgreSQL  {host}:{pg.port}  (user: a principal, password: a token from `quanta token create`)")
    click.echo("press Ctrl+C to stop", err=True)
    import signal
    import threading

    def _stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        threading.Event().wait()
    finally:
        pg.stop()


# -- demo data ---------------------------------------------------------------------------------------


@main.command()
@click.argument("mesh_path", required=False, metavar="[MESH]")
@mesh_option
@click.option("--scale", default=1.0, show_default=True, type=float,
              help="Scale factor: 1 is ~1M rows in all; 100 gives tens of millions.")
@click.option("--seed", default=42, show_default=True, type=int)
@friendly
def generate(mesh_path: str | None, mesh: str | None, scale: float, seed: int) -> None:
    """(Re)generate the demo mesh's data (seeded: the same seed gives the same data)."""
    from . import demo

    path = Path(mesh_path or mesh or default_mesh())
    if scale <= 0:
        _fail("--scale must be positive")
    started = time.perf_counter()
    summary = demo.generate(path, scale=scale, seed=seed, progress=lambda msg: click.echo(f"  {msg}", err=True))
    total = sum(summary.values()) if isinstance(summary, dict) else 0
    click.echo(f"generated {total:,} rows in {len(summary)} datasets under {path / 'data'} in "
               f"{time.perf_counter() - started:.1f} s")


@main.command()
@mesh_option
@click.option("--scale", default=1.0, show_default=True, type=float)
@click.option("--regenerate", is_flag=True, help="Generate the data even if it exists.")
@click.option("--postgres", "postgres", default=None, envvar="QUANTA_DEMO_POSTGRES", metavar="DSN",
              help="A PostgreSQL server (libpq string) to serve the B2B accounts from, live (quantum b2b_live).")
@friendly
def demo(mesh: str | None, scale: float, regenerate: bool, postgres: str | None) -> None:
    """The main job on the demo mesh: generate its data, validate it, and run a tour of queries."""
    from . import demo as demo_data
    from .connection import connect

    path = Path(mesh or default_mesh())
    if regenerate or not (path / "data").exists():
        click.secho(f"generating the demo data (scale {scale:g}) ...", bold=True)
        summary = demo_data.generate(path, scale=scale, progress=lambda msg: click.echo(f"  {msg}"))
        click.echo(f"  {sum(summary.values()):,} rows")
    if postgres:
        click.secho("serving the B2B accounts from PostgreSQL ...", bold=True)
        demo_data.setup_postgres(path, postgres, progress=lambda msg: click.echo(f"  {msg}"))
    conn = connect(str(path), user="ana")
    m = conn.platform.mesh
    click.secho(f"\nmesh {m.name}: {len(m.quanta)} quanta in {len(m.domains)} domains, loaded in "
                f"{conn.platform.state.load_seconds:.2f} s", bold=True)
    errs = [p for p in m.problems if p.severity == "error"]
    for p in errs:
        click.secho(f"  error {p}", fg="red")
    tour = [
        ("ana", None, "The quanta of the mesh (the dictionary is open to everyone)",
         "select quantum, domain, kind, datasets, owner from system.quanta order by 1"),
        ("ana", None, "PII columns, from the dictionary",
         "select quantum, dataset, \"column\", data_type from system.columns where classification = 'pii' "
         "order by 1, 2, 3 limit 10"),
        ("ana", None, "Revenue by region (sales.orders)",
         "select region, count(*) as orders, sum(amount) as revenue from sales.orders group by 1 order by 1"),
        ("ana", None, "A derived quantum, as ana (analyst, US and CA): personal data masked, EU rows filtered",
         "select customer_id, full_name, email, region, tier, total_spent from customer360.customer_360 "
         "order by total_spent desc limit 5"),
        ("paul", None, "The same query as paul (cleared for personal data, all regions)",
         "select customer_id, full_name, email, region, tier, total_spent from customer360.customer_360 "
         "order by total_spent desc limit 5"),
        ("ana", None, "What ana may see of loyalty.members (system.column_access)",
         "select dataset, \"column\", access, policy from system.column_access where quantum = 'loyalty' "
         "and access <> 'visible'"),
        ("ana", None, "Access is denied unless granted", "select * from b2b.accounts limit 3"),
        ("marco", "marketing", "A purpose-limited contract, read by marketing for the purpose 'marketing'",
         "select value_band, count(*) as customers from marketing.campaign_audience group by 1 order by 1"),
        ("fiona", None, "A cross-source join: accounts live from PostgreSQL with orders from a DuckDB file "
         "(when quanta demo --postgres has set up b2b_live)",
         "select a.region, count(distinct a.account_id) as accounts, sum(o.amount) as revenue "
         "from b2b_live.accounts a join b2b.b2b_orders o using (account_id) group by 1 order by 1"),
        ("ana", None, "Lineage of derived datasets", "select * from system.lineage order by target_quantum, target_dataset"),
        ("audrey", None, "The audit log, as the auditor",
         "select principal, status, datasets, policies, rows from system.query_log order by query_id desc limit 8"),
    ]
    if "b2b_live" not in m.quanta:  # only when `quanta demo --postgres DSN` has set it up
        tour = [t for t in tour if "b2b_live" not in t[3]]
    for user, purpose, title, sql in tour:
        click.secho(f"\n{title}", bold=True)
        click.secho(f"  [{user}{', purpose ' + purpose if purpose else ''}] {sql}", fg="cyan")
        try:
            result = connect(str(path), user=user, purpose=purpose).sql(sql)
            click.echo(format_table(result.arrow()))
            if result.policies:
                applied = sorted({f"{p['policy']}" + (f" ({p['column']})" if p.get("column") else "")
                                  for p in result.policies})
                click.secho(f"  policies applied: {', '.join(applied)}", fg="yellow")
        except errors.Error as e:
            click.secho(f"  {type(e).__name__}: {e}", fg="red")
    if errs:
        sys.exit(1)


from .onboarding.commands import register as _register_control_plane  # noqa: E402

_register_control_plane(main)  # onboard, check, versions, rollback, diff, quality, events


if __name__ == "__main__":  # pragma: no cover
    main()
