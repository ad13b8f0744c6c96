"""Charts as inline SVG, drawn on the server: no script, nothing fetched from elsewhere.

Every string that reaches the markup goes through ``format_html``, so a profile,
image or namespace name can never become markup. Each chart is an ``img`` with
a title and description, and each mark has its own ``<title>``; the page shows
the same figures in a table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH = 640
LABEL_WIDTH = 0  # horizontal bars put their label above the bar, so long image names fit at 360 px
ROW_HEIGHT = 34
BAR_HEIGHT = 14
MAX_LABEL = 70


@dataclass(frozen=True)
class Bar:
    """One horizontal bar: its label, value, the value of a full bar, and the text shown for it."""

    label: str
    value: float
    maximum: float
    text: str
    css_class: str = "op-bar"


@dataclass(frozen=True)
class Series:
    """One stack of a column chart (a spawn result), its values in column order."""

    name: str
    css_class: str
    values: Sequence[int]


def _num(value: float) -> str:
    # format_html escapes its arguments into strings first, so numbers are formatted here.
    return f"{value:.1f}"


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else f"{label[: MAX_LABEL - 1]}…"


def _frame(chart_id: str, title: str, description: str, height: int, body: SafeString) -> SafeString:
    return format_html(
        '<svg class="op-chart" id="{id}" role="img" aria-labelledby="{id}-title {id}-desc" '
        'viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        '<title id="{id}-title">{title}</title><desc id="{id}-desc">{description}</desc>{body}</svg>',
        id=chart_id,
        width=WIDTH,
        height=height,
        title=title,
        description=description,
        body=body,
    )


def bar_chart(chart_id: str, title: str, description: str, bars: Sequence[Bar]) -> SafeString:
    """Horizontal bars, one per row, each over a track showing its maximum."""
    height = max(1, len(bars)) * ROW_HEIGHT
    rows = []
    for index, bar in enumerate(bars):
        top = index * ROW_HEIGHT
        fraction = 0.0 if bar.maximum <= 0 else max(0.0, min(1.0, bar.value / bar.maximum))
        rows.append(
            format_html(
                '<g class="op-bar-row" data-label="{label}" data-value="{value}">'
                "<title>{label}: {text}</title>"
                '<text class="op-chart-label" x="0" y="{text_y}">{short}</text>'
                '<text class="op-chart-value" x="{width}" y="{text_y}" text-anchor="end">{text}</text>'
                '<rect class="op-bar-track" x="0" y="{bar_y}" width="{width}" height="{bar_h}" rx="3"></rect>'
                '<rect class="{css}" x="0" y="{bar_y}" width="{fill}" height="{bar_h}" rx="3"></rect>'
                "</g>",
                label=bar.label,
                value=f"{bar.value:g}",
                text=bar.text,
                short=_short(bar.label),
                text_y=top + 12,
                bar_y=top + 16,
                bar_h=BAR_HEIGHT,
                width=WIDTH,
                fill=_num(fraction * WIDTH),
                css=bar.css_class,
            )
        )
    if not bars:
        rows.append(format_html('<text class="op-chart-label" x="0" y="20">{}</text>', "Nothing to show."))
    return _frame(chart_id, title, description, height, format_html_join("", "{}", ((row,) for row in rows)))


def column_chart(
    chart_id: str, title: str, description: str, columns: Sequence[str], series: Sequence[Series]
) -> SafeString:
    """Stacked columns, one per category (a day), with every category's label below it."""
    plot_top, plot_height, axis = 10, 150, 40
    height = plot_top + plot_height + axis
    count = max(1, len(columns))
    step = WIDTH / count
    totals = [sum(s.values[i] for s in series) for i in range(len(columns))]
    peak = max([*totals, 1])
    marks = [
        format_html(
            '<line class="op-chart-axis" x1="0" y1="{y}" x2="{w}" y2="{y}"></line>'
            '<text class="op-chart-value" x="0" y="{top}">{peak}</text>',
            y=plot_top + plot_height,
            w=WIDTH,
            top=plot_top + 2,
            peak=peak,
        )
    ]
    for index, column in enumerate(columns):
        x = index * step + step * 0.15
        bottom = float(plot_top + plot_height)
        for stack in series:
            value = stack.values[index]
            if not value:
                continue
            bar_height = plot_height * value / peak
            bottom -= bar_height
            marks.append(
                format_html(
                    '<rect class="{css}" x="{x}" y="{y}" width="{w}" height="{h}">'
                    "<title>{column} {name}: {value}</title></rect>",
                    css=stack.css_class,
                    x=_num(x),
                    y=_num(bottom),
                    w=_num(step * 0.7),
                    h=_num(bar_height),
                    column=column,
                    name=stack.name,
                    value=value,
                )
            )
        marks.append(
            format_html(
                '<text class="op-chart-tick" x="{x}" y="{y}" text-anchor="middle">{label}</text>',
                x=_num(index * step + step / 2),
                y=plot_top + plot_height + 16,
                label=column[-5:],
            )
        )
    return _frame(chart_id, title, description, height, format_html_join("", "{}", ((mark,) for mark in marks)))
