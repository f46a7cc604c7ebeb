"""The figures as a plain-text table (stdout) and as a Markdown table (for bench/README.md)."""

from __future__ import annotations

from typing import Any

from bench.common import Figure


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "count" or (isinstance(value, int) and not isinstance(value, bool)):
        return f"{value:g}"
    if abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return text


def _cells(f: Figure) -> list[str]:
    ratio = f.ratio
    met = {True: "met", False: "MISSED", None: ""}[f.met]
    value = f"{fmt(f.value, f.unit)} {f.unit}".strip() if f.unit != "count" else fmt(f.value, f.unit)
    ref = fmt(f.ref_value, f.unit) if f.ref_value is not None else "-"
    return [
        f.bench,
        f.name,
        value,
        f.ref_name or "-",
        ref,
        f"{ratio:.2f}x" if ratio is not None else "-",
        f.target or "-",
        met,
    ]


HEADER = ["bench", "figure", "value", "reference", "ref value", "ratio", "target", "met"]


def text_table(figures: list[Figure]) -> str:
    rows = [HEADER] + [_cells(f) for f in figures]
    widths = [min(max(len(r[i]) for r in rows), 48) for i in range(len(HEADER))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(c[:48].ljust(widths[i]) for i, c in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(figures: list[Figure]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for f in figures:
        cells = [c.replace("|", "\\|") for c in _cells(f)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes(figures: list[Figure]) -> list[str]:
    return [f"{f.bench} / {f.name}: {f.note}" for f in figures if f.note]


def summary(results: dict[str, Any]) -> str:
    figures = [f for r in results.values() for f in r.figures]
    met = sum(1 for f in figures if f.met is True)
    missed = [f"{f.bench}: {f.name}" for f in figures if f.met is False]
    text = f"targets met: {met}, missed: {len(missed)}"
    if missed:
        text += "\n  missed: " + "\n  missed: ".join(missed)
    return text
