"""A dataset's lineage as an SVG picture, down to columns.

Boxes are datasets (upstream to the left, the dataset in the middle, downstream to the right), rows
are columns (classification shown as a coloured mark), curves are column lineage edges coloured by
transformation. Plain SVG, no dependency, readable in a browser or embedded in an HTML page.
"""

from __future__ import annotations

from html import escape

from ..catalog.model import Dataset, Mesh
from .columns import ColumnEdge

BOX_W, ROW_H, HEAD_H, GAP_X, GAP_Y, PAD = 230, 18, 26, 120, 24, 20
EDGE_COLOURS = {"identity": "#4a7bd0", "value": "#4a7bd0", "collection": "#4a7bd0", "expression": "#8a5cc2",
                "aggregate": "#2e9d5b", "count": "#2e9d5b", "hash": "#c9822b"}
CLASS_COLOURS = {"pii": "#d64545", "restricted": "#8b0000", "confidential": "#e08a1e", "internal": "#7f8c8d",
                 "public": "#2e9d5b"}


def _neighbourhood(mesh: Mesh, edges: list[ColumnEdge], ds: Dataset) -> dict[tuple[str, str], int]:
    """Datasets around ``ds`` with their level: negative upstream, 0 the dataset, positive downstream."""
    key = (ds.quantum.lower(), ds.name.lower())
    levels = {key: 0}
    ups = {(e.target_quantum.lower(), e.target_dataset.lower()): set() for e in edges}
    downs: dict = {}
    for d in mesh.datasets():
        for q, n in d.reads:
            ups.setdefault((d.quantum.lower(), d.name.lower()), set()).add((q, n))
            downs.setdefault((q, n), set()).add((d.quantum.lower(), d.name.lower()))
    frontier = [key]
    while frontier:
        nxt = []
        for k in frontier:
            for up in ups.get(k, ()):
                if up not in levels:
                    levels[up] = levels[k] - 1
                    nxt.append(up)
        frontier = nxt
    frontier = [key]
    while frontier:
        nxt = []
        for k in frontier:
            for down in downs.get(k, ()):
                if down not in levels:
                    levels[down] = levels[k] + 1
                    nxt.append(down)
        frontier = nxt
    return levels


def lineage_svg(mesh: Mesh, edges: list[ColumnEdge], ds: Dataset) -> str:
    levels = _neighbourhood(mesh, edges, ds)
    by_level: dict[int, list[Dataset]] = {}
    for (q, n), lvl in sorted(levels.items(), key=lambda kv: (kv[1], kv[0])):
        d = mesh.dataset(q, n)
        if d is not None:
            by_level.setdefault(lvl, []).append(d)
    lo = min(by_level)
    pos: dict[tuple[str, str, str], tuple[float, float]] = {}  # column anchor points
    boxes = []
    height = 0
    for lvl in sorted(by_level):
        x = PAD + (lvl - lo) * (BOX_W + GAP_X)
        y = PAD
        for d in by_level[lvl]:
            h = HEAD_H + ROW_H * len(d.columns)
            boxes.append((d, x, y, h, lvl == 0))
            for i, c in enumerate(d.columns):
                cy = y + HEAD_H + ROW_H * i + ROW_H / 2
                pos[(d.quantum.lower(), d.name.lower(), c.name.lower())] = (x, cy)
            y += h + GAP_Y
        height = max(height, y)
    width = PAD * 2 + (max(by_level) - lo + 1) * BOX_W + (max(by_level) - lo) * GAP_X
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + PAD}" '
           f'viewBox="0 0 {width} {height + PAD}" font-family="system-ui, sans-serif" font-size="12" role="img" '
           f'aria-label="Column lineage of {escape(ds.qualified_name)}">',
           f"<title>Column lineage of {escape(ds.qualified_name)}</title>"]
    for e in edges:
        a = pos.get((e.source_quantum.lower(), e.source_dataset.lower(), e.source_column.lower()))
        b = pos.get((e.target_quantum.lower(), e.target_dataset.lower(), e.target_column.lower()))
        if not a or not b:
            continue
        x1, y1, x2, y2 = a[0] + BOX_W, a[1], b[0], b[1]
        mid = (x1 + x2) / 2
        colour = EDGE_COLOURS.get(e.transformation, "#999")
        out.append(f'<path d="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}" '
                   f'fill="none" stroke="{colour}" stroke-width="1.4" opacity="0.8">'
                   f"<title>{escape(e.source_dataset)}.{escape(e.source_column)} → {escape(e.target_column)} "
                   f"({e.transformation})</title></path>")
    for d, x, y, h, focus in boxes:
        stroke = "#1f3b70" if focus else "#9aa5b1"
        out.append(f'<g><rect x="{x}" y="{y}" width="{BOX_W}" height="{h}" rx="6" fill="#fff" stroke="{stroke}" '
                   f'stroke-width="{2 if focus else 1}"/>')
        out.append(f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{HEAD_H}" rx="6" fill="{"#1f3b70" if focus else "#e8edf3"}"/>')
        out.append(f'<text x="{x + 8}" y="{y + 17}" font-weight="bold" fill="{"#fff" if focus else "#1b2733"}">'
                   f"{escape(d.quantum)}.{escape(d.name)}</text>")
        for i, c in enumerate(d.columns):
            cy = y + HEAD_H + ROW_H * i
            colour = CLASS_COLOURS.get((c.classification or "").lower(), "#c8ced6")
            out.append(f'<rect x="{x + 6}" y="{cy + 5}" width="6" height="8" fill="{colour}">'
                       f"<title>{escape(c.classification or 'unclassified')}</title></rect>")
            out.append(f'<text x="{x + 18}" y="{cy + 13}" fill="#1b2733">{escape(c.name)}'
                       f'<tspan fill="#7b8794"> {escape(c.data_type.lower())}</tspan></text>')
        out.append("</g>")
    legend_y = height + 2
    lx = PAD
    for name, colour in EDGE_COLOURS.items():
        out.append(f'<line x1="{lx}" y1="{legend_y}" x2="{lx + 18}" y2="{legend_y}" stroke="{colour}" stroke-width="2"/>'
                   f'<text x="{lx + 22}" y="{legend_y + 4}" fill="#52606d">{name}</text>')
        lx += 100
    out.append("</svg>")
    return "\n".join(out)
