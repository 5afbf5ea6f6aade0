"""Lineage drawn as a small inline SVG: upstream datasets -> this dataset -> downstream datasets.

Columns by distance (the farthest sources on the left), one box per dataset linking to its page, and
an arrow per lineage edge between boxes shown. Plain SVG markup, no script; ``markupsafe`` escapes
every name.
"""

from __future__ import annotations

from markupsafe import Markup, escape

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 236, 40, 64, 18, 12


def lineage_svg(quantum: str, dataset: str, lineage: dict, href=lambda q, d: f"/quanta/{q}/{d}") -> Markup:
    """The SVG of a dataset's lineage (``lineage`` as ``Dictionary.lineage`` returns it)."""
    center = f"{quantum}.{dataset}"
    columns: dict[int, list[tuple[str, str]]] = {0: [(quantum, dataset)]}
    for node in lineage.get("upstream", []):
        columns.setdefault(-node["distance"], []).append((node["quantum"], node["dataset"]))
    for node in lineage.get("downstream", []):
        columns.setdefault(node["distance"], []).append((node["quantum"], node["dataset"]))
    order = sorted(columns)
    rows = max(len(v) for v in columns.values())
    width = PAD * 2 + len(order) * BOX_W + (len(order) - 1) * GAP_X
    height = PAD * 2 + rows * BOX_H + (rows - 1) * GAP_Y
    where: dict[str, tuple[int, int]] = {}
    boxes = []
    for i, level in enumerate(order):
        nodes = sorted(columns[level])
        top = PAD + (height - 2 * PAD - (len(nodes) * BOX_H + (len(nodes) - 1) * GAP_Y)) // 2
        for j, (q, d) in enumerate(nodes):
            x, y = PAD + i * (BOX_W + GAP_X), top + j * (BOX_H + GAP_Y)
            name = f"{q}.{d}"
            where[name] = (x, y)
            kind = "current" if name == center else ("upstream" if level < 0 else "downstream")
            label = name if len(name) <= 28 else name[:27] + "…"
            box = (f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" class="node {kind}"/>'
                   f'<text x="{x + BOX_W // 2}" y="{y + BOX_H // 2 + 5}" text-anchor="middle">{escape(label)}</text>')
            if name == center:
                boxes.append(f'<g class="lineage-node" data-dataset="{escape(name)}"><title>{escape(name)} '
                             f'(this dataset)</title>{box}</g>')
            else:
                boxes.append(f'<a href="{escape(href(q, d))}" class="lineage-node" data-dataset="{escape(name)}">'
                             f'<title>{escape(name)} ({kind})</title>{box}</a>')
    arrows = []
    for edge in lineage.get("edges", []):
        if edge["source"] in where and edge["target"] in where:
            (x1, y1), (x2, y2) = where[edge["source"]], where[edge["target"]]
            arrows.append(f'<line x1="{x1 + BOX_W}" y1="{y1 + BOX_H // 2}" x2="{x2 - 4}" y2="{y2 + BOX_H // 2}" '
                          f'class="edge" marker-end="url(#arrow)" data-edge="{escape(edge["source"])}->'
                          f'{escape(edge["target"])}"/>')
    up, down = len(lineage.get("upstream", [])), len(lineage.get("downstream", []))
    summary = f"Lineage of {center}: {up} upstream and {down} downstream datasets"
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(summary)}">'
        f"<title>{escape(summary)}</title>"
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>'
        + "".join(arrows) + "".join(boxes) + "</svg>")
