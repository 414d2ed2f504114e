"""The per-fund drift chart of the review view, as geometry for an inline SVG.

One row per holding: its tolerance band (shaded), its target (a tick) and its current
weight (a bar, red when outside the band). Drawn server-side so the page needs no
JavaScript and no chart library; the template renders the numbers computed here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

ROW_HEIGHT = 22
LABEL_WIDTH = 110
PLOT_WIDTH = 520
VALUE_WIDTH = 150


@dataclass(frozen=True)
class ChartRow:
    label: str
    y: float
    bar_width: float
    target_x: float
    band_x: float | None
    band_width: float | None
    breached: bool
    current_weight: float
    target_weight: float


@dataclass(frozen=True)
class DriftChart:
    rows: list[ChartRow]
    width: int
    height: int
    plot_left: int
    plot_width: int
    axis_ticks: list[tuple[float, str]]   # (x, label)
    hidden: int                           # holdings left out (only the largest drifts are drawn)


def drift_chart(drift: pd.DataFrame, max_rows: int = 30) -> DriftChart:
    """Geometry for ``drift`` (rows of rebalance.fund_drift), largest absolute drift first."""
    frame = drift.copy()
    for column in ("current_weight", "target_weight", "band_lower", "band_upper", "drift"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["current_weight"] = frame["current_weight"].fillna(0.0)
    frame["target_weight"] = frame["target_weight"].fillna(0.0)
    frame = frame.reindex(frame["drift"].abs().sort_values(ascending=False, na_position="last").index)
    shown = frame.head(max_rows)
    top = max(shown[["current_weight", "target_weight"]].to_numpy().max(initial=0.0),
              shown["band_upper"].max(skipna=True) if shown["band_upper"].notna().any() else 0.0, 0.01)
    scale = PLOT_WIDTH / (top * 1.08)

    def x(weight: float) -> float:
        return round(LABEL_WIDTH + max(weight, 0.0) * scale, 2)

    rows = []
    for i, rec in enumerate(shown.itertuples(index=False)):   # at most max_rows: display only
        has_band = pd.notna(rec.band_lower) and pd.notna(rec.band_upper)
        rows.append(ChartRow(
            label=str(rec.security_id), y=i * ROW_HEIGHT + 8,
            bar_width=round(max(rec.current_weight, 0.0) * scale, 2),
            target_x=x(rec.target_weight),
            band_x=x(rec.band_lower) if has_band else None,
            band_width=round(x(rec.band_upper) - x(rec.band_lower), 2) if has_band else None,
            breached=bool(rec.breached) if pd.notna(rec.breached) else False,
            current_weight=float(rec.current_weight), target_weight=float(rec.target_weight)))
    step = _tick_step(top)
    ticks = [(x(k * step), f"{k * step:.0%}" if step >= 0.01 else f"{k * step:.1%}")
             for k in range(int(top / step) + 1)]
    return DriftChart(rows=rows, width=LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH,
                      height=len(rows) * ROW_HEIGHT + 36, plot_left=LABEL_WIDTH, plot_width=PLOT_WIDTH,
                      axis_ticks=ticks, hidden=max(len(frame) - len(shown), 0))


def _tick_step(top: float) -> float:
    for step in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25):
        if top / step <= 6:
            return step
    return 0.25


# ------------------------------------------------------------------ tracking difference
TRACKING_PLOT_HEIGHT = 160
TRACKING_BAR_STEP = 9


@dataclass(frozen=True)
class TrackingBar:
    x: float
    y: float
    width: float
    height: float
    negative: bool
    label: str       # the date
    value: float     # the tracking difference (fund return - index return)


@dataclass(frozen=True)
class TrackingChart:
    bars: list[TrackingBar]
    width: int
    height: int
    plot_left: int
    zero_y: float
    axis_ticks: list[tuple[float, str]]   # (y, label)
    first_date: str
    last_date: str


def tracking_chart(history: pd.DataFrame) -> TrackingChart | None:
    """Geometry of the daily tracking difference (rows of rebalance.fund_tracking, oldest
    first): one bar per night above (fund ahead of its index) or below zero. None when no
    night has a difference yet."""
    frame = history.assign(tracking_difference=pd.to_numeric(history["tracking_difference"], errors="coerce")
                           .astype(float))
    frame = frame[frame["tracking_difference"].notna()]
    if frame.empty:
        return None
    top = max(frame["tracking_difference"].abs().max(), 1e-4)
    scale = (TRACKING_PLOT_HEIGHT / 2) / (top * 1.1)
    zero = 10 + TRACKING_PLOT_HEIGHT / 2
    bars = []
    for i, rec in enumerate(frame.itertuples(index=False)):   # at most 60 nights: display only
        value = float(rec.tracking_difference)
        height = round(abs(value) * scale, 2)
        bars.append(TrackingBar(x=LABEL_WIDTH + i * TRACKING_BAR_STEP, y=round(zero - height if value >= 0 else zero, 2),
                                width=TRACKING_BAR_STEP - 2, height=height, negative=value < 0,
                                label=str(rec.as_of_date), value=value))
    step = top * 1.1 / 2
    ticks = [(round(zero - k * step * scale, 2), f"{k * step:+.2%}") for k in (-2, -1, 0, 1, 2)]
    return TrackingChart(bars=bars, width=LABEL_WIDTH + max(len(bars), 20) * TRACKING_BAR_STEP + 20,
                         height=TRACKING_PLOT_HEIGHT + 40, plot_left=LABEL_WIDTH, zero_y=zero, axis_ticks=ticks,
                         first_date=str(frame["as_of_date"].iloc[0]), last_date=str(frame["as_of_date"].iloc[-1]))
