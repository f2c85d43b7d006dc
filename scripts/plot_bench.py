#!/usr/bin/env python3
"""Draws Google Benchmark JSON results as SVG bar charts (no plotting library needed).

usage: plot_bench.py RESULTS_DIR OUTPUT_DIR

For every RESULTS_DIR/NAME.json (written by scripts/bench) it writes OUTPUT_DIR/NAME.svg:
one horizontal bar per benchmark (time per iteration, or its `ns_per_...` counter where the
benchmark reports one), on a log scale, longest name first column. It also writes
OUTPUT_DIR/ratios.svg from RESULTS_DIR/ratios.tsv (label, ratio, goal): the ratio of each
workload to its baseline measured in the same run, with the goal marked."""
import html
import json
import math
import os
import sys

results, output = sys.argv[1], sys.argv[2]
os.makedirs(output, exist_ok=True)
UNITS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
COLOURS = ["#4878d0", "#ee854a", "#6acc64", "#d65f5f", "#956cb4", "#8c613c", "#dc7ec0"]


def bar_chart(path, title, rows, unit, log=True, goal_of=None):
    """rows: (label, value, colour index). goal_of(label) -> a value to mark, or None."""
    rows = [r for r in rows if r[1] > 0]
    if not rows:
        return
    label_width = 8 + 6.6 * max(len(r[0]) for r in rows)
    plot_width, bar_height, top = 520.0, 16, 46
    width = label_width + plot_width + 90
    height = top + len(rows) * (bar_height + 4) + 40
    values = [r[1] for r in rows] + [g for g in (goal_of(r[0]) if goal_of else None
                                                 for r in rows) if g]
    low, high = min(values), max(values)
    if log:
        low, high = 10 ** math.floor(math.log10(low)), 10 ** math.ceil(math.log10(high))
        if low == high:
            high *= 10

        def x_of(v):
            return plot_width * (math.log10(v) - math.log10(low)) / (math.log10(high) -
                                                                      math.log10(low))
    else:
        low, high = 0.0, high * 1.1

        def x_of(v):
            return plot_width * v / high
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'font-family="sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="8" y="20" font-size="14">{html.escape(title)}</text>']
    ticks = []
    if log:
        v = low
        while v <= high * 1.0001:
            ticks.append(v)
            v *= 10
    else:
        step = 10 ** math.floor(math.log10(high / 2))
        ticks = [i * step for i in range(int(high / step) + 1)]
    for v in ticks:
        x = label_width + x_of(v)
        out.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 30}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 16}" text-anchor="middle">'
                   f'{v:g}{unit}</text>')
    for i, (label, value, colour) in enumerate(rows):
        y = top + i * (bar_height + 4)
        out.append(f'<text x="{label_width - 6:.1f}" y="{y + 12}" text-anchor="end">'
                   f'{html.escape(label)}</text>')
        w = max(1.0, x_of(value))
        out.append(f'<rect x="{label_width:.1f}" y="{y}" width="{w:.1f}" height="{bar_height}" '
                   f'fill="{COLOURS[colour % len(COLOURS)]}"><title>{html.escape(label)}: '
                   f'{value:.4g}{unit}</title></rect>')
        out.append(f'<text x="{label_width + w + 4:.1f}" y="{y + 12}">{value:.3g}{unit}</text>')
        goal = goal_of(label) if goal_of else None
        if goal:
            gx = label_width + x_of(goal)
            out.append(f'<line x1="{gx:.1f}" y1="{y - 1}" x2="{gx:.1f}" y2="{y + bar_height + 1}" '
                       'stroke="#000" stroke-width="2"/>')
    if goal_of:
        out.append(f'<text x="8" y="{height - 2}">black tick: the goal for that row</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


for name in sorted(os.listdir(results)):
    if not name.endswith(".json"):
        continue
    with open(os.path.join(results, name)) as f:
        data = json.load(f)
    rows, families = [], {}
    for bench in data.get("benchmarks", []):
        if bench.get("run_type") == "aggregate" or "error_occurred" in bench:
            continue
        family = bench["name"].split("<")[0].split("/")[0]
        colour = families.setdefault(family, len(families))
        value = next((bench[key] for key in sorted(bench) if key.startswith("ns_per")), None)
        if value is None:
            value = bench["real_time"] * UNITS.get(bench.get("time_unit", "ns"), 1.0)
        rows.append((bench["name"], float(value), colour))
    base = name[:-5]
    bar_chart(os.path.join(output, base + ".svg"),
              f"bench_{base}: ns per operation (or per iteration), log scale", rows, " ns")

ratios_path = os.path.join(results, "ratios.tsv")
if os.path.exists(ratios_path):
    rows, goals = [], {}
    with open(ratios_path) as f:
        for line in f:
            label, ratio, goal = line.rstrip("\n").split("\t")
            if ratio in ("", "n/a"):
                continue
            rows.append((label, float(ratio.rstrip("x")), 0 if float(ratio.rstrip("x")) <=
                         float(goal) else 3))
            goals[label] = float(goal)
    bar_chart(os.path.join(output, "ratios.svg"),
              "gpummu / baseline in the same run (green: at or under the goal; red: over)",
              [(l, v, 2 if c == 0 else 3) for l, v, c in rows], "x", log=True,
              goal_of=goals.get)
print(f"plots written to {output}")
