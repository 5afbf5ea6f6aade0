"""A picture of a dataset's quality and row-count history, as a self-contained SVG (no plotting library).

Top panel: the share of rules passing per run (a line; each point coloured by the run's worst status).
Bottom panel: the rows checked per run (bars). X axis: runs in time order, labelled with their dates.
"""

from __future__ import annotations

from html import escape

COLORS = {"pass": "#2e9e5b", "warn": "#e0a526", "fail": "#d64541", "error": "#8e44ad"}
ORDER = ("error", "fail", "warn", "pass")


def runs(results: list[dict]) -> list[dict]:
    """Results grouped by run: time, rules passing, worst status, rows."""
    by: dict[str, dict] = {}
    for r in results:
        run = by.setdefault(r["run_id"], {"run_id": r["run_id"], "at": r["at"], "total": 0, "passed": 0,
                                          "statuses": set(), "rows": None, "version": r.get("version")})
        if r["type"] == "anomaly":
            run["rows"] = r["measured"]
            continue
        if r["metric"] == "rowCount" and run["rows"] is None:
            run["rows"] = r["measured"]
        run["total"] += 1
        run["passed"] += r["status"] == "pass"
        run["statuses"].add(r["status"])
    out = []
    for run in sorted(by.values(), key=lambda x: x["at"]):
        run["worst"] = next((s for s in ORDER if s in run["statuses"]), "pass")
        run["score"] = 100.0 * run["passed"] / run["total"] if run["total"] else 100.0
        out.append(run)
    return out


def svg(dataset: str, results: list[dict], width: int = 720, height: int = 420) -> str:
    data = runs(results)
    left, right, top = 60, 20, 40
    panel = (height - top - 60) // 2
    y1, y2 = top, top + panel + 30
    plot_w = width - left - right
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="20" font-size="14" font-weight="bold">{escape(dataset)}: quality and rows '
             f'({len(data)} runs)</text>']
    for y, label in ((y1, "rules passing (%)"), (y2, "rows")):
        parts.append(f'<rect x="{left}" y="{y}" width="{plot_w}" height="{panel}" fill="#f7f7f7" stroke="#ccc"/>')
        parts.append(f'<text x="{left - 6}" y="{y - 4}" text-anchor="start" fill="#555">{label}</text>')
    if not data:
        parts.append(f'<text x="{left + 10}" y="{y1 + panel // 2}">no quality runs yet</text></svg>')
        return "".join(parts)
    n = len(data)
    step = plot_w / max(n, 1)

    def x(i: int) -> float:
        return left + step * (i + 0.5)

    for v in (0, 50, 100):
        yy = y1 + panel - panel * v / 100
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{v}</text>')
    points = [(x(i), y1 + panel - panel * r["score"] / 100) for i, r in enumerate(data)]
    parts.append('<polyline fill="none" stroke="#3b6ea5" stroke-width="2" points="'
                 + " ".join(f"{px:.1f},{py:.1f}" for px, py in points) + '"/>')
    for (px, py), r in zip(points, data):
        parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{COLORS[r["worst"]]}">'
                     f'<title>{escape(str(r["at"]))}: {r["passed"]}/{r["total"]} rules pass ({r["worst"]})</title>'
                     f'</circle>')
    top_rows = max((r["rows"] or 0) for r in data) or 1
    parts.append(f'<text x="{left - 6}" y="{y2 + 10}" text-anchor="end">{int(top_rows):,}</text>')
    parts.append(f'<text x="{left - 6}" y="{y2 + panel}" text-anchor="end">0</text>')
    bar = max(step * 0.6, 1)
    for i, r in enumerate(data):
        h = panel * (r["rows"] or 0) / top_rows
        parts.append(f'<rect x="{x(i) - bar / 2:.1f}" y="{y2 + panel - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                     f'fill="{COLORS[r["worst"]]}" opacity="0.8"><title>{escape(str(r["at"]))}: '
                     f'{int(r["rows"] or 0):,} rows</title></rect>')
    labels = max(1, n // 8)
    for i, r in enumerate(data):
        if i % labels == 0 or i == n - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{y2 + panel + 16}" text-anchor="middle" fill="#555">'
                         f'{escape(str(r["at"])[:10])}</text>')
    lx = left
    for s in ("pass", "warn", "fail", "error"):
        parts.append(f'<rect x="{lx}" y="{height - 16}" width="10" height="10" fill="{COLORS[s]}"/>'
                     f'<text x="{lx + 14}" y="{height - 7}">{s}</text>')
        lx += 70
    parts.append("</svg>")
    return "".join(parts)
