"""Small horizontal bar charts as inline SVG, for pages that must stand alone (reports).

Inline SVG needs no script and no network, prints well and survives being mailed as a file;
the live dashboard uses Chart.js instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

Series = tuple[str, str, Sequence[float | int | None]]
"""(legend label, colour, one value per category; None draws no bar)."""

_WIDTH = 900
_LABEL_WIDTH = 320
_BAR_HEIGHT = 11
_BAR_GAP = 2
_GROUP_GAP = 12
_TOP = 46
_VALUE_ROOM = 44


def nice_axis(value: float, ticks: int = 4) -> tuple[float, float]:
    """(axis end, tick step) for data up to ``value``: a step of 1, 2 or 5 × 10^k, so counts
    get whole ticks (a maximum of 3 gives 0, 1, 2, 3)."""
    if value <= 0:
        return 1.0, 1.0
    raw = value / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if value >= 1:
        step = max(step, 1.0)
    return math.ceil(value / step - 1e-9) * step, step


def _format(value: float | int) -> str:
    text = f"{value:.1f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    return text.replace(".", ",")


def bar_chart(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    markers: Sequence[float | int | None] | None = None,
    marker_label: str = "",
) -> Markup:
    """A grouped horizontal bar chart: one group per category, one bar per series.

    ``markers`` draws a short vertical tick per category (e.g. its target) and adds
    ``marker_label`` to the legend. Returns SVG markup, safe to insert in a page.
    """
    values = [v for _, _, column in series for v in column if v is not None]
    values += [m for m in (markers or ()) if m is not None]
    axis_end, step = nice_axis(max(values, default=0))
    plot_width = _WIDTH - _LABEL_WIDTH - _VALUE_ROOM
    group_height = len(series) * (_BAR_HEIGHT + _BAR_GAP) - _BAR_GAP
    height = _TOP + len(categories) * (group_height + _GROUP_GAP) + 24

    def x_of(value: float) -> float:
        return _LABEL_WIDTH + plot_width * value / axis_end

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {height}" '
        f'width="100%" style="max-width: {_WIDTH}px" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
    ]
    legend_x = 0
    legend = [(label, colour, "bar") for label, colour, _ in series]
    if markers is not None and marker_label:
        legend.append((marker_label, "#333", "tick"))
    for label, colour, kind in legend:
        if kind == "bar":
            parts.append(
                f'<rect x="{legend_x}" y="26" width="12" height="10" fill="{colour}" rx="2"/>'
            )
        else:
            parts.append(
                f'<rect x="{legend_x + 5}" y="23" width="2.5" height="16" fill="{colour}"/>'
            )
        parts.append(f'<text x="{legend_x + 17}" y="35" class="legend">{escape(label)}</text>')
        legend_x += 30 + 7 * len(label)

    # Vertical grid at each tick.
    bottom = height - 20
    for tick in range(round(axis_end / step) + 1):
        value = tick * step
        x = x_of(value)
        parts.append(
            f'<line x1="{x:.1f}" y1="{_TOP - 4}" x2="{x:.1f}" y2="{bottom}" class="grid"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 14}" class="tick" text-anchor="middle">'
            f"{_format(value)}</text>"
        )

    y = _TOP
    for index, category in enumerate(categories):
        parts.append(
            f'<text x="{_LABEL_WIDTH - 8}" y="{y + group_height / 2 + 4:.1f}" '
            f'text-anchor="end" class="label">{escape(category)}</text>'
        )
        marker = markers[index] if markers is not None else None
        bar_y = y
        for label, colour, column in series:
            bar_value = column[index]
            if bar_value is not None:
                width = max(x_of(bar_value) - _LABEL_WIDTH, 0.0)
                parts.append(
                    f'<rect x="{_LABEL_WIDTH}" y="{bar_y}" width="{width:.1f}" '
                    f'height="{_BAR_HEIGHT}" fill="{colour}" rx="1.5">'
                    f"<title>{escape(label)} : {_format(bar_value)}</title></rect>"
                )
                text_x = _LABEL_WIDTH + width + 4
                if marker is not None and -6 <= x_of(marker) - text_x <= 24:
                    text_x = x_of(marker) + 5  # keep the figure clear of the target tick
                parts.append(
                    f'<text x="{text_x:.1f}" y="{bar_y + _BAR_HEIGHT - 2}" '
                    f'class="value">{_format(bar_value)}</text>'
                )
            bar_y += _BAR_HEIGHT + _BAR_GAP
        if marker is not None:
            parts.append(
                f'<rect x="{x_of(marker) - 1.25:.1f}" y="{y - 3}" width="2.5" '
                f'height="{group_height + 6}" fill="#333">'
                f"<title>{escape(marker_label)} : {_format(marker)}</title></rect>"
            )
        y += group_height + _GROUP_GAP
    parts.append("</svg>")
    return Markup("".join(parts))
