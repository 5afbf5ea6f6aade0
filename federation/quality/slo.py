"""SLOs from a contract's ``slaProperties``: a status per dataset and property (met, at risk, breached).

    latency            the newest ``element`` value (e.g. ``orders.order_ts``) is at most value+unit old
    frequency          a new version (or, without versions, new data) at least every value+unit
    retention          no row older than value+unit is still served (``element`` gives the row's time)
    timeOfAvailability yesterday's data is there by the given UTC time (``07:00Z``) every day
    endOfSupport/endOfLife   past: breached; within 30 days: at risk
    availability       the share of successful probes (``value`` percent) over the last 30 days
                       (mesh setting ``availability_window_days``)
    anything else      unknown (not measured)

Each evaluation (and each quality check) first **probes** the dataset: ``SELECT 1 FROM <dataset> LIMIT 1``
on the engine, Quanta's own SQL run as the system, recorded (ok, or failed with the reason) in the
store and in ``system.availability_probes``. With fewer probes in the window than
``availability_min_probes`` (default 10) availability is never ``met``: ``at risk``, or ``breached``
when the failures already exceed the target whatever the missing probes would say. A dataset that
cannot be read makes the SLOs that need its data ``unknown``.

"At risk" means more than 80% of the allowance is used. Times without a zone are taken as UTC.
Evaluations are stored (``system.slo_history``; the latest in ``system.slo_status``) and a newly
breached SLO emits an ``slo_breached`` event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time as dtime, timedelta, timezone

from .. import errors
from ..catalog.model import Dataset
from ..engine.duckdb_backend import quote

AT_RISK = 0.8
UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60,
         "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400,
         "w": 604800, "week": 604800, "weeks": 604800, "mo": 2592000, "month": 2592000, "months": 2592000,
         "y": 31536000, "yr": 31536000, "year": 31536000, "years": 31536000}


@dataclass
class SloStatus:
    quantum: str
    dataset: str
    property: str
    target: str
    measured: str | None
    status: str  # met | at risk | breached | unknown
    message: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _seconds(value, unit) -> float | None:
    try:
        return float(value) * UNITS[str(unit or "d").lower()]
    except (KeyError, TypeError, ValueError):
        return None


def _fmt(seconds: float) -> str:
    for name, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {name}"
    return f"{seconds:.0f} s"


def _utc(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime.combine(value, dtime(), tzinfo=timezone.utc)
    return None


def _grade(used: float, allowed: float) -> str:
    if used > allowed:
        return "breached"
    return "at risk" if used > AT_RISK * allowed else "met"


def properties_for(contract_raw: dict, ds: Dataset) -> list[dict]:
    """The slaProperties of a contract that concern ``ds`` (element ``<dataset>.<column>``, or none)."""
    out = []
    for p in contract_raw.get("slaProperties") or []:
        if not isinstance(p, dict) or not p.get("property"):
            continue
        element = str(p.get("element") or "")
        if element:
            first = element.split(",")[0].strip()
            obj = first.split(".")[0] if "." in first else None
            if obj is not None and obj.lower() not in (ds.name.lower(), (ds.physical_name or "").lower()):
                continue
        out.append(p)
    return out


def _element_column(p: dict, ds: Dataset):
    element = str(p.get("element") or "").split(",")[0].strip()
    if not element:
        return None
    col = ds.column(element.split(".")[-1])
    return col


def probe(platform, ds: Dataset, store) -> tuple[bool, str | None]:
    """Whether ``ds`` can be read now (one cheap read on the engine, as the system); recorded in
    ``store`` (the control store)."""
    backend = platform.state.backend
    rel = ".".join(quote(x) for x in backend.relation(ds.quantum, ds.name))
    try:
        platform.read(f"SELECT 1 FROM {rel} LIMIT 1", "slo-probe", datasets=[f"{ds.quantum}.{ds.name}"])
        ok, reason = True, None
    except Exception as e:  # noqa: BLE001 - whatever keeps the data from being read is an outage
        ok, reason = False, (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    store.record_probe(ds.quantum, ds.name, ok, reason)
    return ok, reason


def _availability(p: dict, probes: list[dict], settings: dict, window: float) -> tuple[str | None, str, str]:
    """(measured, status, message) of an availability SLA from the probes in its window."""
    try:
        target = float(str(p.get("value")).rstrip("%"))
    except ValueError:
        return None, "unknown", f"cannot read the availability target {p.get('value')!r} (a percentage)"
    if str(p.get("unit") or "percent").lower() not in ("percent", "%"):
        return None, "unknown", f"availability is a percentage, not {p.get('unit')!r}"
    needed = settings["availability_min_probes"]  # fewer probes in the window are too few to say "met"
    n, ok = len(probes), sum(1 for x in probes if x["ok"])
    if n == 0:
        return None, "unknown", f"no probe in the last {_fmt(window)}"
    share = 100.0 * ok / n
    text = f"{ok} of {n} probe(s) in the last {_fmt(window)} read the data"
    failed = [x for x in probes if not x["ok"]]
    if failed:
        text += f"; last failure at {failed[-1]['at']}: {failed[-1]['reason']}"
    if n < needed:
        best = 100.0 * (ok + needed - n) / needed  # the missing probes all successful
        return f"{share:.2f}%", "breached" if best < target else "at risk", (
            f"{text}; too few probes to judge ({needed} needed)")
    return f"{share:.2f}%", _grade(100.0 - share, 100.0 - target), text


def evaluate(platform, ds: Dataset, store, now: datetime | None = None) -> list[SloStatus]:
    """The status of each SLA of ``ds``, after probing whether it can be read (``store``: the control
    store, which keeps the probes and the versions)."""
    now = now or datetime.now(timezone.utc)
    contract = platform.mesh.contracts.get(ds.contract_id)
    if contract is None:
        return []
    readable, reason = probe(platform, ds, store)
    backend = platform.state.backend
    rel = ".".join(quote(x) for x in backend.relation(ds.quantum, ds.name))
    current = store.current(ds.quantum, ds.name)
    settings = platform.mesh.settings
    window = settings["availability_window_days"] * 86400
    out: list[SloStatus] = []
    cache: dict[str, tuple] = {}

    def bounds(column) -> tuple:
        if not readable:
            raise errors.Unavailable(f"the data cannot be read: {reason}")
        if column.name not in cache:
            table = platform.read(f"SELECT min({quote(column.name)}), max({quote(column.name)}) FROM {rel}", "slo",
                                  datasets=[f"{ds.quantum}.{ds.name}"])
            cache[column.name] = tuple(table.to_pylist()[0].values())
        return cache[column.name]

    for p in properties_for(contract.raw, ds):
        prop = str(p["property"])
        target = f"{p.get('value')}{' ' + str(p['unit']) if p.get('unit') else ''}"

        def add(measured, status, message):
            out.append(SloStatus(ds.quantum, ds.name, prop, target, measured, status, message))

        if prop.lower() == "availability":
            probes = store.probes(ds.quantum, ds.name, since=(now - timedelta(seconds=window)).isoformat())
            add(*_availability(p, probes, settings, window))
            continue
        try:
            _measure(p, prop, target, _element_column(p, ds), current, now, bounds, add)
        except errors.Error as e:
            add(None, "unknown", f"not measured: {e}")
    return out


def _measure(p: dict, prop: str, target: str, column, current, now: datetime, bounds, add) -> None:
    """One SLA property measured from the data (``bounds``: min and max of a column) or the versions."""
    key = prop.lower()
    if key in ("latency", "frequency"):
        allowed = _seconds(p.get("value"), p.get("unit"))
        if allowed is None:
            add(None, "unknown", f"cannot read the {prop} target {target!r}")
            return
        if key == "frequency" and current is not None:
            last, what = datetime.fromisoformat(current.created_at), f"version v{current.version}"
        elif column is not None:
            last, what = _utc(bounds(column)[1]), f"newest {column.name}"
        elif current is not None:
            last, what = datetime.fromisoformat(current.created_at), f"version v{current.version}"
        else:
            add(None, "unknown", "no element column and no published version to measure")
            return
        if last is None:
            add(None, "breached", "no data")
            return
        age = (now - last).total_seconds()
        add(last.isoformat(), _grade(age, allowed), f"{what} is {_fmt(age)} old; allowed {_fmt(allowed)}")
    elif key == "retention":
        allowed = _seconds(p.get("value"), p.get("unit"))
        if column is None or allowed is None:
            add(None, "unknown", "retention needs an element column and a duration")
            return
        oldest = _utc(bounds(column)[0])
        if oldest is None:
            add(None, "met", "no data")
            return
        age = (now - oldest).total_seconds()
        add(oldest.isoformat(), "breached" if age > allowed else "met",
            f"oldest {column.name} is {_fmt(age)} old; kept at most {_fmt(allowed)}")
    elif key == "timeofavailability":
        m = re.match(r"^(\d{1,2}):(\d{2})", str(p.get("value") or ""))
        if not m or column is None:
            add(None, "unknown", "timeOfAvailability needs HH:MM and an element column")
            return
        due = datetime.combine(now.date(), dtime(int(m[1]), int(m[2])), tzinfo=timezone.utc)
        newest = _utc(bounds(column)[1])
        expected = (now.date() - timedelta(days=1)) if now >= due else (now.date() - timedelta(days=2))
        ok = newest is not None and newest.date() >= expected
        add(newest.isoformat() if newest else None, "met" if ok else "breached",
            f"data of {expected} due by {due.time().strftime('%H:%M')} UTC; newest {column.name}: "
            f"{newest.date() if newest else 'none'}")
    elif key in ("endofsupport", "endoflife"):
        try:
            end = _utc(datetime.fromisoformat(str(p.get("value")).replace("Z", "+00:00")))
        except ValueError:
            add(None, "unknown", f"cannot read the date {p.get('value')!r}")
            return
        left = (end - now).total_seconds()
        status = "breached" if left < 0 else ("at risk" if left < 30 * 86400 else "met")
        add(end.isoformat(), status, f"{prop} {'passed' if left < 0 else 'in ' + _fmt(left)}")
    else:
        add(None, "unknown", f"{prop} is not measured by Quanta")


def evaluate_and_record(platform, store, datasets: list[Dataset],
                        principal: str = "quanta-system") -> list[SloStatus]:
    """Evaluate the SLOs of ``datasets`` and record them in ``store`` (history, and an ``slo_breached``
    event for each SLO newly breached). The caller refreshes what shows them
    (``onboarding.control.evaluate_slos`` does both)."""
    before = {(h["quantum"], h["dataset"], h["property"]): h["status"] for h in store.slo_history()}
    statuses = [s for ds in datasets for s in evaluate(platform, ds, store)]
    at = datetime.now(timezone.utc).isoformat()
    rows = [dict(at=at, quantum=s.quantum.lower(), dataset=s.dataset.lower(), property=s.property, target=s.target,
                 measured=s.measured, status=s.status, message=s.message) for s in statuses]
    events = [dict(kind="slo_breached", quantum=s.quantum, dataset=s.dataset, principal=principal,
                   message=f"{s.quantum}.{s.dataset} {s.property} SLO breached: {s.message}")
              for s in statuses if s.status == "breached"
              and before.get((s.quantum.lower(), s.dataset.lower(), s.property)) != "breached"]
    store.record_slo(rows, events)
    return statuses
