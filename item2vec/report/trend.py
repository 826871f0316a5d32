"""The metric history as a picture: is the published list getting better or worse, night by night?

Reads the history the publisher keeps under ``<output>/_metrics/`` (``item2vec.publish``'s
HISTORY_SCHEMA: one row per run, evaluation method and model) and draws HR@10 and MRR@10 over
the run date. Scores of different methods are not comparable (a previous run's list on new
sessions vs a holdout model vs tonight's list on its validation slice), so each (method, model)
is its own series and points of different methods are never joined. Only published runs are
joined by lines; the published list's score of a rejected run is a red x, so a regression night
stands out instead of bending the line.

Selecting the points needs pyarrow only (:func:`trend_data`); drawing needs matplotlib from the
report extra, imported inside :func:`draw_trend`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from item2vec.reader import read_history, resolve
from item2vec.report._run import require

__all__ = ["Point", "Run", "Series", "Trend", "draw_trend", "output_history", "trend_data"]

MAIN_MODEL = "published"
METHODS = ("previous_run", "holdout", "validation")  # drawing and legend order
MODELS = ("published", "embedding", "cooc_knn", "sequential_rules", "popularity")
METRICS = (("hr_10", "HR@10"), ("mrr_10", "MRR@10"))
_REQUIRED = ("run_date", "run_id", "status", "method", "model")

# line style and marker per method; colour per model (the published list bold and saturated,
# the baselines light so they read as context)
_METHOD_STYLE = {"previous_run": ("-", "o"), "holdout": ("--", "s"), "validation": (":", "D")}
_OTHER_METHOD_STYLE = ("-.", "^")
_MODEL_COLOUR = {"published": "#2563eb", "embedding": "#8fb3de", "cooc_knn": "#e9a96b",
                 "sequential_rules": "#8cc991", "popularity": "#b5b5b5"}
_OTHER_MODEL_COLOUR = "#c9b3d9"
_VALIDATION_COLOUR = "#7c3aed"
_REJECTED_COLOUR = "#d62728"
_HALF_BAND = dt.timedelta(hours=10)
_DT = re.compile(r"^dt=\d{4}-\d{2}-\d{2}$")
_RUN = re.compile(r"^run=[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Run:
    """One run in the picture (the latest of its date and status)."""

    run_date: str
    run_id: str
    status: str  # "published" | "rejected"
    finished_at: str


@dataclass(frozen=True)
class Point:
    run_date: str
    run_id: str
    hr_10: float | None
    mrr_10: float | None


@dataclass(frozen=True)
class Series:
    """One model scored by one method, oldest point first."""

    method: str
    model: str
    points: tuple[Point, ...]

    @property
    def label(self) -> str:
        if self.method == "validation":
            return "tonight's list on its validation slice"
        return f"{self.model} ({self.method})"


@dataclass(frozen=True)
class Trend:
    """What :func:`draw_trend` drew: the runs, the joined series of published runs, and the
    published list's points of rejected runs (red x). ``png`` is None when there was nothing to
    draw; ``note`` then says why."""

    runs: tuple[Run, ...]
    series: tuple[Series, ...]
    rejected: tuple[Series, ...]
    png: str | None = None
    note: str | None = None

    def get(self, method: str, model: str = MAIN_MODEL, *, rejected: bool = False
            ) -> Series | None:
        """The series of ``model`` scored by ``method`` (of rejected runs with ``rejected``)."""
        for s in self.rejected if rejected else self.series:
            if (s.method, s.model) == (method, model):
                return s
        return None


def output_history(run_dir: str, *, filesystem: Any = None) -> pa.Table:
    """The metric history of the output ``run_dir`` belongs to (``<root>/dt=.../run=...``, or
    ``<root>/dt=...`` as older versions wrote); an empty table when ``run_dir`` is not inside an
    output root (e.g. a run copied elsewhere)."""
    fs, path = resolve(run_dir, filesystem=filesystem)
    parts = path.rstrip("/").split("/")
    if parts and _RUN.match(parts[-1]):
        parts = parts[:-1]
    if len(parts) < 2 or not _DT.match(parts[-1]):
        return pa.table({})
    root = "/".join(parts[:-1]) or "/"
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return pa.table({})
    return read_history(root, filesystem=fs)


def trend_data(history: pa.Table, *, runs: int | None = None, until: str | None = None) -> Trend:
    """The series to draw from a metric history: the latest run per run date and status, the
    last ``runs`` run dates (all when None), dates after ``until`` (YYYY-MM-DD) left out.

    Raises ValueError naming the column when the table has rows but lacks a needed column.
    """
    if runs is not None and runs < 1:
        raise ValueError(f"trend runs must be >= 1, got {runs}")
    rows = _rows(history)
    if until is not None:
        rows = [r for r in rows if r["run_date"] <= until]
    latest: dict[tuple[str, str], tuple[str, str]] = {}
    for r in rows:
        key, rank = (r["run_date"], r["status"]), (r["finished_at"], r["run_id"])
        if rank > latest.get(key, ("", "")):
            latest[key] = rank
    dates = sorted({date for date, _ in latest})
    if runs is not None:
        dates = dates[-runs:]
    shown = {(date, status, run_id): finished
             for (date, status), (finished, run_id) in latest.items() if date in dates}
    chosen = sorted(shown.items(), key=lambda kv: (kv[0][0], kv[1], kv[0][2]))
    run_list = tuple(Run(date, run_id, status, finished)
                     for (date, status, run_id), finished in chosen)
    kept = [r for r in rows if (r["run_date"], r["status"], r["run_id"]) in shown]

    joined: dict[tuple[str, str], list[Point]] = {}
    marked: dict[tuple[str, str], list[Point]] = {}
    for r in sorted(kept, key=lambda r: (r["run_date"], r["finished_at"])):
        point = Point(r["run_date"], r["run_id"], r["hr_10"], r["mrr_10"])
        if point.hr_10 is None and point.mrr_10 is None:
            continue
        if r["status"] == "rejected":
            if r["model"] == MAIN_MODEL:  # the list that failed; its baselines add nothing
                marked.setdefault((r["method"], r["model"]), []).append(point)
        else:
            joined.setdefault((r["method"], r["model"]), []).append(point)
    series = tuple(Series(m, model, tuple(p)) for (m, model), p in sorted(joined.items(),
                                                                            key=_series_order))
    rejected = tuple(Series(m, model, tuple(p)) for (m, model), p in sorted(marked.items(),
                                                                              key=_series_order))
    note = None
    if len(run_list) < 2:
        note = (f"The metric trend needs at least two runs with metrics; this output has "
                f"{len(run_list) or 'none'} so far.")
    elif not series and not rejected:
        note = "No run in the history has an HR@10 or MRR@10 value to draw."
    return Trend(run_list, series, rejected, note=note)


def draw_trend(history: pa.Table, out_png: str, *, runs: int | None = None,
               until: str | None = None) -> Trend:
    """Draw HR@10 (top) and MRR@10 (bottom) of the last ``runs`` run dates and save a PNG.

    Returns the :class:`Trend` that was drawn (``png`` set), or one with ``note`` set and no
    file written when there are fewer than two runs or no values.
    """
    trend = trend_data(history, runs=runs, until=until)
    if trend.note:
        return trend
    require("matplotlib")
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, DayLocator
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(11, 6.6), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    rejected_dates = sorted({_day(r.run_date) for r in trend.runs if r.status == "rejected"})
    for ax, (column, title) in zip(axes, METRICS, strict=True):
        for day in rejected_dates:  # a faint band: the night a run was turned away
            midnight = dt.datetime.combine(day, dt.time())
            ax.axvspan(midnight - _HALF_BAND, midnight + _HALF_BAND, color=_REJECTED_COLOUR,
                       alpha=0.08, lw=0, zorder=0)
        for s in trend.series:
            xs, ys = _xy(s.points, column)
            if xs:
                ax.plot(xs, ys, **_style(s))
        for s in trend.rejected:  # a red x in a ring of the series' marker and colour
            xs, ys = _xy(s.points, column)
            if xs:
                style = _style(s)
                ax.plot(xs, ys, ls="none", marker=style["marker"], ms=11, mew=1.4,
                        mfc="white", mec=style["color"], zorder=10)
                ax.plot(xs, ys, ls="none", marker="x", ms=7, mew=2.2, color=_REJECTED_COLOUR,
                        zorder=11)
        top = max((v for s in (*trend.series, *trend.rejected) for v in _xy(s.points, column)[1]),
                  default=0.0)
        ax.set_ylim(0, top * 1.12 if top > 0 else 1.0)  # from 0: a drop is not exaggerated
        ax.set_ylabel(title)
        ax.grid(True, axis="y", color="#e5e9ee", lw=0.8)
        ax.grid(True, axis="x", color="#f0f2f5", lw=0.6)
        for name in ("top", "right"):
            ax.spines[name].set_visible(False)
        for spine in ("left", "bottom"):
            ax.spines[spine].set_color("#c0c6cc")
        ax.tick_params(colors="#444444", labelsize=9)
    days = sorted({_day(r.run_date) for r in trend.runs})
    # whole days only (run dates have no time of day); half a day of margin on either side
    locator = DayLocator() if (days[-1] - days[0]).days <= 12 else AutoDateLocator(
        minticks=3, maxticks=10, interval_multiples=True)
    axes[1].xaxis.set_major_locator(locator)
    axes[1].xaxis.set_major_formatter(ConciseDateFormatter(locator))
    margin = dt.timedelta(hours=14)
    axes[1].set_xlim(dt.datetime.combine(days[0], dt.time()) - margin,
                     dt.datetime.combine(days[-1], dt.time()) + margin)

    models = [m for m in (*MODELS, *sorted({s.model for s in trend.series} - set(MODELS)))
              if any(s.model == m and s.method != "validation" for s in trend.series)]
    model_handles = [Line2D([], [], color=_colour(m), lw=2.6 if m == MAIN_MODEL else 1.6, label=m)
                     for m in models]
    if trend.get("validation") or trend.get("validation", rejected=True):
        model_handles.append(Line2D([], [], color=_VALIDATION_COLOUR, ls=":", marker="D", ms=4,
                                    lw=1.8, label="validation (tonight's list)"))
    methods = [m for m in (*METHODS, *sorted({s.method for s in trend.series} - set(METHODS)))
               if m != "validation" and any(s.method == m for s in (*trend.series,
                                                                      *trend.rejected))]
    method_handles = [Line2D([], [], color="#555555", ls=_method_style(m)[0],
                             marker=_method_style(m)[1], ms=4, lw=1.4, label=m) for m in methods]
    if trend.rejected:
        method_handles.append(Line2D([], [], ls="none", marker="x", ms=7, mew=2.2,
                                     color=_REJECTED_COLOUR, label="rejected run (not published)"))
    legend = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "frameon": False,
              "fontsize": 8.5, "title_fontsize": 9, "alignment": "left"}
    axes[0].legend(handles=model_handles, title="model", **legend)
    if method_handles:
        axes[1].legend(handles=method_handles, title="method", **legend)

    published = sum(r.status == "published" for r in trend.runs)
    fig.suptitle(f"item2vec metric trend · {days[0]} to {days[-1]}", fontsize=13,
                 fontweight="bold", x=0.01, ha="left")
    axes[0].set_title(
        f"{len(days)} run dates · {published} published, {len(trend.runs) - published} "
        "rejected · lines join published runs of one method; methods are not comparable",
        fontsize=9.5, color="#555555", loc="left")
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, facecolor="white", metadata={"Software": None})
    return dataclasses.replace(trend, png=str(out))


def _rows(history: pa.Table) -> list[dict[str, Any]]:
    """History rows with the columns the trend needs (absent metric columns read as null)."""
    if history.num_rows == 0:
        return []
    missing = [c for c in _REQUIRED if c not in history.column_names]
    if missing:
        raise ValueError(f"metric history lacks column(s) {', '.join(missing)}; expected "
                         "item2vec.publish.HISTORY_SCHEMA")
    columns = {c: history.column(c).to_pylist() for c in _REQUIRED}
    for c in ("finished_at", *(name for name, _ in METRICS)):
        columns[c] = (history.column(c).to_pylist() if c in history.column_names
                      else [None] * history.num_rows)
    rows = []
    for values in zip(*columns.values(), strict=True):
        row = dict(zip(columns, values, strict=True))
        if not row["run_date"] or not row["run_id"]:
            continue
        row["run_date"] = str(row["run_date"])[:10]
        row["finished_at"] = str(row["finished_at"] or "")
        for name, _ in METRICS:
            value = row[name]
            row[name] = float(value) if value is not None and math.isfinite(value) else None
        rows.append(row)
    return rows


def _series_order(item: tuple[tuple[str, str], Any]) -> tuple[int, int, str, str]:
    method, model = item[0]
    return (METHODS.index(method) if method in METHODS else len(METHODS),
            MODELS.index(model) if model in MODELS else len(MODELS), method, model)


def _day(run_date: str) -> dt.date:
    return dt.date.fromisoformat(run_date)


def _xy(points: tuple[Point, ...], column: str) -> tuple[list[dt.date], list[float]]:
    pairs = [(_day(p.run_date), getattr(p, column)) for p in points]
    pairs = [(x, y) for x, y in pairs if y is not None]
    return [x for x, _ in pairs], [y for _, y in pairs]


def _colour(model: str) -> str:
    return _MODEL_COLOUR.get(model, _OTHER_MODEL_COLOUR)


def _method_style(method: str) -> tuple[str, str]:
    return _METHOD_STYLE.get(method, _OTHER_METHOD_STYLE)


def _style(s: Series) -> dict[str, Any]:
    ls, marker = _method_style(s.method)
    if s.method == "validation":
        return {"ls": ls, "marker": marker, "ms": 4, "lw": 1.8, "color": _VALIDATION_COLOUR,
                "zorder": 8, "label": s.label}
    main = s.model == MAIN_MODEL
    return {"ls": ls, "marker": marker, "ms": 5 if main else 3, "lw": 2.6 if main else 1.2,
            "color": _colour(s.model), "alpha": 1.0 if main else 0.9, "zorder": 9 if main else 4,
            "label": s.label}
