"""Quarantine you can work with: the rows an onboarding kept out, governed like their dataset, and the
control-plane operations on them.

    list_batches(platform, principal, "sales.orders")   the batches (``sales.orders.v3``): rules, counts, status
    show(platform, "sales.orders.v3", principal)        its rows, read through the query pipeline as principal
    release(platform, "sales.orders.v3", principal)     re-check; publish the rows that pass as a new version
    drop(platform, "sales.orders.v3", principal)        discard the batch (a ``quarantine_dropped`` event)

**Governed by construction.** The quarantined rows of a dataset are not a system table with masks of its
own: they are the relation ``<quantum>."<dataset>@quarantine"``, resolved like a pinned version
(``quantum."dataset@v3"``, ``rewrite/resolve.py``): a subquery tagged with the dataset, which the
governance pass secures with the dataset's own decision (its grant, purposes, contract status,
retention, row filters, then masks, denied columns left out). Its columns are the dataset's, plus
three that carry no value of the data: ``_quanta_reason`` (the rules the row fails, ``; ``-separated),
``_quanta_version`` (the version it was kept out of: the batch) and ``_quanta_row`` (its row number in
that batch). ``system.quarantine`` is that relation over every dataset the principal may read, one row per
quarantined row, the governed row as JSON (``rewrite/quarantine.py``). Whoever may not read the dataset
reads none of its quarantine; a masked column is masked there too; a row filter hides the same rows.

**Release** re-checks a batch against the rules in force now (row-level rules of severity error, as
quarantine decides), and publishes the rows that pass together with the dataset's current rows as a new
version, through the onboarding pipeline (every rule, the contract gate, an atomic publish). The batch's
new state (the rows still failing, with their rule, in a new file; or ``released``) commits in the same
transaction as the version: never a half release. Only the quantum's owners and data engineers
(``authorize.allowed(..., "publish", dataset)``) may list, show, release or drop.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa

from .. import errors
from ..catalog.model import Dataset
from ..engine.duckdb_backend import literal, quote
from .common import dataset_of, remove_tree, store_of
from .quarantine_relation import REASON, ROW, VERSION, batch_id, held_column, relation_name  # noqa: F401 - re-exported
from .store import Store

class NothingToRelease(errors.Conflict):
    """Every row of the batch still fails a rule in force."""

    code = "nothing_to_release"


# -- the control plane -----------------------------------------------------------------------------------


def _authorize(platform, principal, ds: Dataset, words: str) -> None:
    from ..governance.authorize import allowed

    verdict = allowed(platform, principal, "publish", ds, what=words)
    if not verdict:
        raise errors.AccessDenied(verdict.reason)


def _batch(platform, ident: str, principal, words: str) -> tuple[Dataset, dict]:
    """The dataset and batch of an id ``<quantum>.<dataset>.v<N>``; UnknownObject otherwise. Whoever may not
    ``words`` on the dataset is refused before the batch is looked for: which batches exist is not theirs to learn."""
    parts = str(ident).strip().split(".")
    if len(parts) != 3 or not parts[2][:1].lower() == "v" or not parts[2][1:].isdigit():
        raise errors.UnknownObject(f"{ident!r} is not a quarantine id: they read <quantum>.<dataset>.v<N> "
                                   "(quanta quarantine list)")
    ds = dataset_of(platform, f"{parts[0]}.{parts[1]}")
    _authorize(platform, principal, ds, words)
    return ds, _find(platform, ds, int(parts[2][1:]), ident)


def _find(platform, ds: Dataset, version: int, ident: str) -> dict:
    found = [b for b in store_of(platform).quarantine_batches(ds.quantum, ds.name) if b["version"] == version]
    if not found:
        raise errors.UnknownObject(f"there is no quarantine {ident}: {ds.qualified_name} v{version} kept no row "
                                   "out (quanta quarantine list)")
    return found[0]


def _summary(b: dict) -> dict:
    return {"id": batch_id(b["quantum"], b["dataset"], b["version"]), "dataset": f"{b['quantum']}.{b['dataset']}",
            "version": b["version"], "status": b["status"], "rows": b["rows"], "rules": b["rules"],
            "quarantined_at": b["quarantined_at"], "updated_at": b["updated_at"], "principal": b["principal"],
            "released_into": b["released_into"]}


def list_batches(platform, principal, name: str | None = None, every: bool = False) -> list[dict]:
    """The quarantine batches of ``name`` (or of every dataset whose control plane ``principal`` runs): rule
    names and counts, no value. ``every``: released and dropped ones too."""
    from ..governance.authorize import allowed

    if name is not None:
        ds = dataset_of(platform, name)
        _authorize(platform, principal, ds, "read the quarantine")
        mine = {(ds.quantum.lower(), ds.name.lower())}
    else:
        mine = {(ds.quantum.lower(), ds.name.lower()) for ds in platform.mesh.datasets()
                if allowed(platform, principal, "publish", ds)}
    if not Store.exists(platform.state_dir):
        return []
    out = [_summary(b) for b in store_of(platform).quarantine_batches()
           if (b["quantum"], b["dataset"]) in mine and (every or b["status"] == "held")]
    return sorted(out, key=lambda b: (b["dataset"], b["version"]))


def show(platform, ident: str, principal, limit: int | None = None):
    """The batch's summary and its rows, read through the query pipeline as ``principal`` (their masks,
    row filters and denied columns apply, as to the dataset): (summary, pyarrow Table)."""
    ds, b = _batch(platform, ident, principal, "read the quarantine")
    summary = _summary(b)
    if b["status"] != "held":
        return summary, pa.table({})
    sql = (f'SELECT * FROM {quote(ds.quantum.lower())}.{quote(relation_name(ds.name))} '
           f'WHERE {quote(VERSION)} = ? ORDER BY {quote(ROW)}' + (f" LIMIT {int(limit)}" if limit else ""))
    result = platform.query(sql, principal, [b["version"]], interface="control")
    try:
        return summary, result.arrow()
    finally:
        result.close()


def _still_failing(con, ds: Dataset, rules) -> tuple[str, list[str]]:
    """The SQL of each held row's failing rules now (``; ``-joined) and the names of the rules used."""
    from ..quality import rules as R

    used, reasons = [], []
    for rule in rules:
        if not rule.row_level or rule.is_warning:
            continue
        if rule.metric == "duplicateValues":
            part = ", ".join(quote(c) for c in rule.columns)
            pred = f"(row_number() OVER (PARTITION BY {part} ORDER BY {quote(ROW)}) > 1)"
        else:
            try:
                pred = R.failing(rule, ds)
            except R.RuleError:
                continue
        if pred is None:
            continue
        used.append(rule.name)
        reasons.append(f"CASE WHEN {pred} THEN {literal(rule.name)} END")
    return (f"concat_ws('; ', {', '.join(reasons)})" if reasons else "''"), used


def release(platform, ident: str, principal):
    """Re-check the batch with the rules in force and publish the rows that now pass, with the dataset's
    current rows, as a new version; the rows still failing stay in the batch with the rule they fail.
    NothingToRelease (a Conflict) when none passes; the onboarding's OnboardingRejected when the new
    version is refused (then nothing changed). Returns (the onboarding report, the batch's summary)."""
    from ..engine import private
    from . import serving
    from .control import onboard
    from .pipeline import dataset_lock
    from .common import rules_of
    from .tables import refresh

    ds, b = _batch(platform, ident, principal, "release quarantined rows")
    with dataset_lock(platform.mesh, ds):
        b = _find(platform, ds, b["version"], ident)  # again, under the lock
        if b["status"] != "held":
            raise errors.Conflict(f"quarantine {ident} is {b['status']}: nothing to release")
        if not b["path"] or not Path(b["path"]).exists():
            raise errors.Unavailable(f"the file of quarantine {ident} is missing ({b['path']})")
        _sweep(Path(b["path"]), b["version"])
        con = private.staging(platform.mesh.settings["threads"])
        remaining_path, staging = None, None
        try:
            con.execute(f"CREATE TABLE _held AS SELECT * FROM read_parquet({literal(b['path'])})")
            have = {r[0].lower() for r in con.execute("DESCRIBE _held").fetchall()}
            # columns renamed since the batch was held: their data under today's names (the rules read those)
            snapshot = store_of(platform).contract_snapshot(ds.quantum, ds.name, b["version"])
            then = serving.snapshot_dataset(ds, snapshot) if snapshot else None
            for c in ds.columns:
                was = held_column(c, then, have)
                if was is not None and was.lower() != c.name.lower():
                    con.execute(f"ALTER TABLE _held RENAME COLUMN {quote(was)} TO {quote(c.name)}")
                    have = (have - {was.lower()}) | {c.name.lower()}
            if ROW not in have:
                con.execute(f"ALTER TABLE _held ADD COLUMN {quote(ROW)} BIGINT")
                con.execute(f"UPDATE _held SET {quote(ROW)} = rowid + 1")
            reason, _ = _still_failing(con, ds, rules_of(platform, ds))
            con.execute(f"CREATE TABLE _checked AS SELECT * REPLACE ({reason} AS {quote(REASON)}) FROM _held")
            total = con.execute("SELECT count(*) FROM _checked").fetchone()[0]
            failing = con.execute(f"SELECT count(*) FROM _checked WHERE {quote(REASON)} <> ''").fetchone()[0]
            counts = _counts(con, "_checked")
            if failing == total:
                why = ", ".join(f"{r} ({n} row{'s' if n != 1 else ''})" for r, n in sorted(counts.items()))
                raise NothingToRelease(f"nothing to release from quarantine {ident}: all {total} row(s) still fail "
                                       f"the rules in force: {why}; fix the rows' source or the rules first")
            # the new version's batch: the current version's files as they are, and the rows that pass, written
            # with the same names and types (read together by the onboarding; nothing is held in memory)
            current = store_of(platform).current(ds.quantum, ds.name)
            files = sorted(str(f) for f in serving.version_dir(platform.mesh, ds.quantum, ds.name,
                                                                current.version).glob("*.parquet")) if current else []
            found = {r[0].lower(): r[0] for r in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet([{', '.join(literal(f) for f in files)}])").fetchall()} \
                if files else {}
            select = [f"CAST({quote(c.name) if c.name.lower() in have else 'NULL'} AS {c.data_type}) AS "
                      f"{quote(found.get(c.source_name.lower()) or found.get(c.name.lower()) or c.source_name)}"
                      for c in ds.columns]
            staging = Path(b["path"]).parent / f".release-{uuid.uuid4().hex[:8]}"
            staging.mkdir()
            con.execute(f"COPY (SELECT {', '.join(select)} FROM _checked WHERE {quote(REASON)} = '' ORDER BY "
                        f"{quote(ROW)}) TO {literal(str(staging / 'released.parquet'))} (FORMAT parquet)")
            batch = files + [str(staging / "released.parquet")]
            if failing:
                remaining_path = str(Path(b["path"]).with_name(f"v{b['version']}.{uuid.uuid4().hex[:8]}.parquet"))
                tmp = remaining_path + ".tmp"
                con.execute(f"COPY (SELECT * FROM _checked WHERE {quote(REASON)} <> '' ORDER BY {quote(ROW)}) TO "
                            f"{literal(tmp)} (FORMAT parquet)")
                os.replace(tmp, remaining_path)
        except BaseException:
            if staging is not None:
                remove_tree(staging)
            raise
        finally:
            con.close()
        released = total - failing
        rules_left = {r: n for r, n in counts.items() if r}

        def commit_with(version: int) -> list[tuple[str, tuple]]:
            status = "held" if failing else "released"
            return [Store.quarantine_stmt(ds.quantum, ds.name, b["version"], status, remaining_path, failing,
                                          rules_left, principal.name, version),
                    Store._event_stmt(  # noqa: SLF001 - one transaction with the version
                        "quarantine_released", ds.quantum, ds.name, version, principal.name,
                        f"{released} row(s) of quarantine {ident} released into v{version}"
                        + (f"; {failing} still failing" if failing else ""),
                        {"quarantine": ident, "released": released, "still_failing": failing, "rules": rules_left})]

        try:
            report = onboard(platform, ds.qualified_name, batch, principal, fmt="parquet", on_error="quarantine",
                             commit_with=commit_with)
        except BaseException:
            if remaining_path:
                Path(remaining_path).unlink(missing_ok=True)
            raise
        finally:
            remove_tree(staging)
        if remaining_path != b["path"]:
            Path(b["path"]).unlink(missing_ok=True)  # after the commit: the batch's rows live in the new file
    platform.reload(changed=True)
    refresh(platform)
    return report, _summary(_find(platform, ds, b["version"], ident))


def drop(platform, ident: str, principal) -> dict:
    """Discard a held batch: recorded (``quarantine_dropped``: counts and rule names, no value), then its
    file is deleted."""
    from .pipeline import dataset_lock
    from .tables import refresh

    ds, b = _batch(platform, ident, principal, "drop quarantined rows")
    with dataset_lock(platform.mesh, ds):
        b = _find(platform, ds, b["version"], ident)
        if b["status"] != "held":
            raise errors.Conflict(f"quarantine {ident} is {b['status']} already: nothing to drop")
        store_of(platform).set_quarantine(
            Store.quarantine_stmt(ds.quantum, ds.name, b["version"], "dropped", None, 0, b["rules"], principal.name),
            [dict(kind="quarantine_dropped", quantum=ds.quantum, dataset=ds.name, version=b["version"],
                  principal=principal.name, message=f"quarantine {ident} dropped: {b['rows']} row(s)",
                  details={"quarantine": ident, "rows": b["rows"], "rules": b["rules"]})])
        if b["path"]:
            Path(b["path"]).unlink(missing_ok=True)
    platform.reload(changed=True)
    refresh(platform)
    return _summary(_find(platform, ds, b["version"], ident))


def _sweep(path: Path, version: int) -> None:
    """Remove the files of a release that crashed before its commit (the batch's row names another file)."""
    for f in path.parent.glob(f"v{version}.*.parquet"):
        if f != path:
            f.unlink(missing_ok=True)
    for d in path.parent.glob(".release-*"):
        remove_tree(d)


def _counts(con, table: str) -> dict[str, int]:
    rows = con.execute(f"SELECT rule, count(*) FROM (SELECT unnest(string_split({quote(REASON)}, '; ')) AS rule "
                       f"FROM {table}) WHERE rule <> '' GROUP BY rule ORDER BY rule").fetchall()
    return {r: n for r, n in rows}
