"""``quanta generate`` and ``quanta demo``: the demo mesh's data, and a tour of it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from .. import errors
from ..config import default_mesh
from .common import fail, format_table, friendly, main, mesh_option


@main.command()
@click.argument("mesh_path", required=False, metavar="[MESH]")
@mesh_option
@click.option("--scale", default=1.0, show_default=True, type=float,
              help="Scale factor: 1 is ~1M rows in all; 100 gives tens of millions.")
@click.option("--seed", default=42, show_default=True, type=int)
@friendly
def generate(mesh_path: str | None, mesh: str | None, scale: float, seed: int) -> None:
    """(Re)generate the demo mesh's data (seeded: the same seed gives the same data)."""
    from .. import demo

    path = Path(mesh_path or mesh or default_mesh())
    if scale <= 0:
        fail("--scale must be positive")
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
    from .. import demo as demo_data
    from ..connection import connect

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
