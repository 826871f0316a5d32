"""One self-contained HTML page per run, to review a run without Spark or a notebook.

Everything is inline (CSS, SVG charts, the map as a base64 data URI) so the file can be mailed,
attached to a ticket or archived next to the run and still render offline. Needs pyarrow only.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from item2vec.reader import read_table
from item2vec.report._run import item_label, load_manifest, lookup_items, neighbours_of
from item2vec.report.trend import Point, Trend

__all__ = ["trend_section", "write_report", "write_trend_page"]

NEIGHBOURS_SHOWN = 10
MAIN_MODELS = ("published", "item2vec")  # the evaluated list ("item2vec" in older manifests)
TREND_CAPTION = (
    "HR@10 (top) and MRR@10 (bottom) of the last runs, one line per model and evaluation "
    "method; the published list is drawn bold, the baselines light. Methods are never joined: "
    "<b>previous_run</b> (solid) scores the list an earlier run published on the sessions "
    "that came after it, the closest to what users saw; <b>holdout</b> (dashed) scores a second "
    "model trained on this run's earlier sessions on its later ones; <b>validation</b> "
    "(dotted, purple) scores tonight's list on the validation slice of its training sessions. "
    "A red &times; is a run that failed the quality gate and was not published. Of re-runs "
    "of one date, the latest published and the latest rejected run are shown."
)

_CSS = """
:root { --fg: #1f2328; --muted: #656d76; --line: #e5e9ee; --border: #d0d7de;
        --accent: #2563eb; --soft: #f6f8fa; --good: #1a7f37; --warn: #9a6700; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: var(--fg);
       font: 15px/1.55 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue",
             Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 36px 32px 72px; }
h1 { font-size: 27px; line-height: 1.25; margin: 0 0 6px; letter-spacing: -0.01em; }
h2 { font-size: 18px; margin: 40px 0 14px; padding-bottom: 6px;
     border-bottom: 1px solid var(--border); }
h3 { font-size: 15px; margin: 0 0 2px; }
p.note, .meta, .sub { color: var(--muted); font-size: 13.5px; }
.meta span + span::before { content: "·"; margin: 0 8px; color: #b0b7bf; }
.badge { display: inline-block; padding: 1px 10px; border-radius: 999px; font-size: 12.5px;
         font-weight: 600; vertical-align: middle; margin-left: 10px; }
.badge.ok { background: #dafbe1; color: var(--good); }
.badge.other { background: #fff8c5; color: var(--warn); }
table { border-collapse: collapse; font-size: 14px; width: 100%; }
th, td { padding: 5px 10px; text-align: left; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase;
     letter-spacing: 0.04em; border-bottom: 1px solid var(--border); }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.sub td { color: var(--muted); font-size: 13px; }
tr.sub td:first-child { padding-left: 26px; }
tr.total td { font-weight: 600; border-top: 1px solid var(--border); }
tr.main td { background: #eef4ff; }
tr.rejected td { color: #b42318; }
td.best { font-weight: 700; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 36px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(232px, 1fr));
          gap: 14px 24px; margin: 18px 0 6px; }
.chart h4 { margin: 0 0 2px; font-size: 13px; font-weight: 600; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(470px, 1fr)); gap: 18px; }
.card { border: 1px solid var(--border); border-radius: 8px; padding: 14px 16px 8px; }
.card table { font-size: 13.5px; margin-top: 8px; }
.card td, .card th { padding: 3px 8px; white-space: nowrap; }
.card td.t { width: 100%; max-width: 0; overflow: hidden; text-overflow: ellipsis; }
.card td.sbar { width: 64px; min-width: 64px; }
.bar { display: inline-block; height: 8px; border-radius: 2px; background: var(--accent);
       opacity: 0.7; vertical-align: middle; }
.barcell { width: 34%; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
              font-size: 12.5px; }
figure { margin: 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line);
             border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
.config td:first-child { width: 38%; }
footer { margin-top: 48px; color: var(--muted); font-size: 12.5px; }
@media (max-width: 800px) { .grid2 { grid-template-columns: 1fr; } }
"""


def write_report(
    run_dir: str,
    out_html: str,
    *,
    items: pa.Table | None = None,
    map_png: str | None = None,
    examples: int = 8,
    shown_path: str | None = None,
    trend: Trend | None = None,
) -> str:
    """Write the run report as one self-contained HTML file; returns its path.

    ``shown_path`` is the location printed on the page (default ``run_dir``): the job draws
    the report in staging, before the run moves to its published place.

    Sections: header, counts, timings, metrics vs baselines (skipped without ``metrics``),
    the metric trend (when ``trend`` is given: its PNG, or its note), the embedding map (when
    ``map_png`` is given), neighbour lists of the ``examples`` most frequent items, and the
    resolved config.
    """
    manifest = load_manifest(run_dir)
    run_date = str(manifest.get("run_date", "?"))
    shown = shown_path or run_dir
    sections = [
        _header(manifest, shown),
        '<div class="grid2">'
        + _counts(manifest.get("counts") or {})
        + _timings(manifest.get("timings_s") or {})
        + "</div>",
        _metrics(manifest.get("metrics")),
        trend_section(trend) if trend is not None else "",
        _map(map_png),
        _examples(run_dir, items, examples),
        _config(manifest.get("config")),
        f"<footer>Generated by <code>item2vec.report</code> from <code>{escape(str(shown))}"
        + "</code>.</footer>",
    ]
    return _write_page(out_html, f"item2vec run {run_date}", sections)


def write_trend_page(trend: Trend, out_html: str, *, shown_path: str) -> str:
    """Write a self-contained page holding only the metric trend of the output ``shown_path``;
    returns its path."""
    sections = [
        f"<header><h1>item2vec metric trend</h1><div class=\"meta\"><code>"
        f"{escape(str(shown_path))}</code></div></header>",
        trend_section(trend),
        f"<footer>Generated by <code>item2vec.report</code> from the metric history of "
        f"<code>{escape(str(shown_path))}</code>.</footer>",
    ]
    return _write_page(out_html, "item2vec metric trend", sections)


def _write_page(out_html: str, title: str, sections: list[str]) -> str:
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        "<body>\n<main>\n" + "\n".join(s for s in sections if s) + "\n</main>\n</body>\n</html>\n"
    )
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return str(out)


def _fmt(value: Any, digits: int = 4) -> str:
    """Thousands separators for integers, fixed decimals for floats, escaped text otherwise."""
    if isinstance(value, bool) or value is None:
        return escape(str(value))
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return escape(str(value))
        return f"{value:,.{digits}f}"
    return escape(str(value))


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _header(manifest: dict, run_dir: str) -> str:
    status = str(manifest.get("status", "unknown"))
    badge = "ok" if status == "published" else "other"
    meta = []
    started, finished = manifest.get("started_at"), manifest.get("finished_at")
    if started:
        meta.append(f"started {escape(str(started))}")
    duration = _duration(started, finished)
    if duration is not None:
        meta.append(f"took {duration:,.0f} s")
    for key, label in (("spark_version", "Spark"), ("schema_version", "schema")):
        if manifest.get(key) is not None:
            meta.append(f"{label} {escape(str(manifest[key]))}")
    return (
        f"<header><h1>item2vec run {escape(str(manifest.get('run_date', '?')))}"
        f'<span class="badge {badge}">{escape(status)}</span></h1>'
        f'<div class="meta">{"".join(f"<span>{m}</span>" for m in meta)}</div>'
        f'<div class="meta"><code>{escape(str(run_dir))}</code></div></header>'
    )


def _duration(started: Any, finished: Any) -> float | None:
    try:
        start = datetime.fromisoformat(str(started))
        end = datetime.fromisoformat(str(finished))
    except ValueError:
        return None
    try:
        return (end - start).total_seconds()
    except TypeError:  # one naive, one aware
        return None


def _counts(counts: dict) -> str:
    rows = []
    read = counts.get("events_read")
    for key, value in counts.items():
        if key == "events_rejected" and isinstance(value, dict):
            total = sum(v for v in value.values() if _is_number(v))
            share = f" ({100 * total / read:.1f}%)" if _is_number(read) and read else ""
            rows.append(f"<tr><td>events rejected</td><td class=num>{_fmt(total)}{share}</td></tr>")
            for reason, n in sorted(value.items(), key=lambda kv: str(kv[0])):
                rows.append(
                    f'<tr class="sub"><td>{escape(str(reason))}</td>'
                    f"<td class=num>{_fmt(n)}</td></tr>"
                )
        else:
            rows.append(
                f"<tr><td>{escape(str(key).replace('_', ' '))}</td>"
                f"<td class=num>{_fmt(value)}</td></tr>"
            )
    if not rows:
        return "<section><h2>Counts</h2><p class=note>No counts in the manifest.</p></section>"
    return (
        "<section><h2>Counts</h2><table><thead><tr><th>what</th><th class=num>n</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _timings(timings: dict) -> str:
    numeric = {k: float(v) for k, v in timings.items() if _is_number(v)}
    if not numeric:
        return "<section><h2>Timings</h2><p class=note>No timings in the manifest.</p></section>"
    longest = max(numeric.values()) or 1.0
    rows = [
        f"<tr><td>{escape(str(stage))}</td><td class=num>{seconds:,.1f}</td>"
        f'<td class="barcell"><span class="bar" style="width:{100 * seconds / longest:.1f}%">'
        "</span></td></tr>"
        for stage, seconds in numeric.items()
    ]
    total = sum(numeric.values())
    rows.append(f'<tr class="total"><td>sum</td><td class=num>{total:,.1f}</td><td></td></tr>')
    return (
        "<section><h2>Timings</h2><table><thead><tr><th>stage</th><th class=num>seconds</th>"
        f"<th></th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _metrics(metrics: Any) -> str:
    """Models x metrics table (best per column in bold) plus one small bar chart per metric."""
    if not isinstance(metrics, dict):
        return ""
    models = {
        str(name): {str(k): v for k, v in values.items() if _is_number(v)}
        for name, values in (metrics.get("models") or {}).items()
        if isinstance(values, dict)
    }
    models = {name: values for name, values in models.items() if values}
    if not models:
        return ""
    names: list[str] = []
    for values in models.values():
        names += [m for m in values if m not in names]
    best = {m: max(v[m] for v in models.values() if m in v) for m in names}

    head = "".join(f"<th class=num>{escape(m)}</th>" for m in names)
    body = []
    for model, values in models.items():
        cells = []
        for m in names:
            if m in values:
                cls = "num best" if values[m] == best[m] and len(models) > 1 else "num"
                cells.append(f'<td class="{cls}">{_fmt(float(values[m]))}</td>')
            else:
                cells.append("<td class=num>&ndash;</td>")
        main = ' class="main"' if model in MAIN_MODELS else ""
        body.append(f"<tr{main}><td>{escape(model)}</td>{''.join(cells)}</tr>")
    table = (
        f"<table><thead><tr><th>model</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )
    charts = "".join(
        f'<div class="chart"><h4>{escape(m)}</h4>{_bar_svg(models, m)}</div>' for m in names
    )
    holdout = metrics.get("holdout")
    note = ""
    if isinstance(holdout, dict) and holdout:
        parts = ", ".join(f"{escape(str(k))} = {_fmt(v)}" for k, v in holdout.items())
        note = f"<p class=note>Holdout: {parts}.</p>"
    extra = {k: v for k, v in metrics.items() if k not in ("models", "holdout")}
    if extra:
        note += f"<pre class=mono>{escape(json.dumps(extra, indent=2, default=str))}</pre>"
    return (
        "<section><h2>Evaluation: item2vec vs baselines</h2>"
        "<p class=note>Higher is better; the best model per metric is in bold.</p>"
        f'{table}<div class="charts">{charts}</div>{note}</section>'
    )


def _bar_svg(models: dict[str, dict[str, float]], metric: str) -> str:
    """Horizontal bars, one per model, on a 0..max scale; item2vec in the accent colour."""
    label_w, bar_w, row_h, pad = 84, 96, 20, 4
    rows = [(name, float(v[metric])) for name, v in models.items() if metric in v]
    top = max((abs(value) for _, value in rows), default=1.0) or 1.0
    width, height = label_w + bar_w + 52, pad * 2 + row_h * len(rows)
    parts = [
        (
            f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(metric)} by model" font-size="12" '
            'font-family="-apple-system, Segoe UI, Roboto, Arial, sans-serif">'
        )
    ]
    for row, (name, value) in enumerate(rows):
        y = pad + row * row_h
        length = max(bar_w * max(value, 0.0) / top, 1.0)
        colour = "#2563eb" if name in MAIN_MODELS else "#9aa4b2"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" fill="#444">'
            f"{escape(name if len(name) <= 13 else name[:12] + '…')}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{length:.1f}" height="{row_h - 8}" '
            f'rx="2" fill="{colour}"/>'
            f'<text x="{label_w + length + 5:.1f}" y="{y + 14}" fill="#222">{_fmt(value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _map(map_png: str | None) -> str:
    if not map_png:
        return ""
    data = base64.b64encode(Path(map_png).read_bytes()).decode("ascii")
    return (
        "<section><h2>Embedding map</h2><figure>"
        f'<img src="data:image/png;base64,{data}" alt="2-D map of the item embedding">'
        "<figcaption>t-SNE of L2-normalised item vectors. Nearby points were embedded close "
        "together; ★ marks frequent items, lines join them to their top-3 neighbours from "
        "similar_items.</figcaption></figure></section>"
    )


def trend_section(trend: Trend) -> str:
    """The metric trend: the PNG inline with its caption and a table of the runs drawn, or the
    trend's note when there was nothing to draw."""
    head = "<section><h2>Metric trend</h2>"
    if trend.png is None:
        return f"{head}<p class=note>{escape(trend.note or 'No metric history.')}</p></section>"
    data = base64.b64encode(Path(trend.png).read_bytes()).decode("ascii")
    return (
        f'{head}<figure><img src="data:image/png;base64,{data}" '
        'alt="HR@10 and MRR@10 of the last runs per model and evaluation method">'
        f"<figcaption>{TREND_CAPTION}</figcaption></figure>{_trend_table(trend)}</section>"
    )


def _trend_table(trend: Trend) -> str:
    """The published list's numbers per run, newest first, folded away (the picture is the
    summary; the table is for reading a value off exactly)."""
    values: dict[tuple[str, str], dict[str, Point]] = {}
    for s in (*trend.series, *trend.rejected):
        if s.model == "published":
            for p in s.points:
                values.setdefault((p.run_date, p.run_id), {})[s.method] = p
    rows = []
    for run in reversed(trend.runs):
        got = values.get((run.run_date, run.run_id), {})
        method = next((m for m in got if m != "validation"), None)
        point, check = got.get(method) if method else None, got.get("validation")
        cls = ' class="rejected"' if run.status == "rejected" else ""
        rows.append(
            f"<tr{cls}><td>{escape(run.run_date)}</td><td><code>{escape(run.run_id)}</code></td>"
            f"<td>{escape(run.status)}</td><td>{escape(method or '')}</td>"
            f"{_cell(point, 'hr_10')}{_cell(point, 'mrr_10')}{_cell(check, 'hr_10')}</tr>"
        )
    return (
        f"<details><summary class=note>The {len(trend.runs)} runs drawn (published list)"
        "</summary><table><thead><tr><th>run date</th><th>run</th><th>status</th>"
        "<th>method</th><th class=num>HR@10</th><th class=num>MRR@10</th>"
        "<th class=num>validation HR@10</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></details>"
    )


def _cell(point: Point | None, column: str) -> str:
    value = getattr(point, column) if point is not None else None
    return f"<td class=num>{_fmt(value) if value is not None else '&ndash;'}</td>"


def _examples(run_dir: str, items: pa.Table | None, examples: int) -> str:
    """Neighbour lists of the most frequent items: the quickest sanity check of a run."""
    if examples <= 0:
        return ""
    vocab = read_table(run_dir, "vocabulary", filter=pc.field("item_index") < examples)
    vocab = vocab.sort_by("item_index")
    if vocab.num_rows == 0:
        return ""
    ids = vocab.column("item_id").combine_chunks()
    neighbours = neighbours_of(run_dir, ids, NEIGHBOURS_SHOWN)
    all_ids = ids.to_pylist() + [
        row["similar_item_id"] for rows in neighbours.values() for row in rows
    ]
    meta = lookup_items(items, pa.array(all_ids, type=ids.type))
    has_title = items is not None and "title" in items.column_names
    has_cat = items is not None and "category" in items.column_names
    cards = []
    for item, freq in zip(ids.to_pylist(), vocab.column("frequency").to_pylist(), strict=True):
        info = meta.get(item) or {}
        sub = [f"<code>{escape(str(item))}</code>"]
        if info.get("category"):
            sub.append(escape(str(info["category"])))
        sub.append(f"frequency {_fmt(freq)}")
        head = "<th class=num>#</th><th>neighbour</th>"
        head += "<th>title</th>" if has_title else ""
        head += "<th>category</th>" if has_cat else ""
        head += "<th class=num>score</th><th></th>"
        rows = []
        for row in neighbours.get(item, []):
            other = meta.get(row["similar_item_id"]) or {}
            score = float(row["score"])
            cells = [
                f"<td class=num>{row['rank']}</td>",
                f"<td><code>{escape(str(row['similar_item_id']))}</code></td>",
            ]
            if has_title:
                text = escape(str(other.get("title") or ""))
                cells.append(f'<td class="t" title="{text}">{text}</td>')
            if has_cat:
                cells.append(f"<td>{escape(str(other.get('category') or ''))}</td>")
            cells.append(f"<td class=num>{score:.3f}</td>")
            cells.append(
                f'<td class="sbar"><span class="bar" '
                f'style="width:{100 * min(max(score, 0.0), 1.0):.0f}%"></span></td>'
            )
            rows.append(f"<tr>{''.join(cells)}</tr>")
        if not rows:
            rows.append('<tr><td colspan="6" class="sub">no neighbours</td></tr>')
        title = escape(item_label(item, info, 60))
        cards.append(
            f'<div class="card"><h3>{title}</h3><div class="sub">{" · ".join(sub)}</div>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    return (
        "<section><h2>Nearest neighbours of frequent items</h2>"
        f"<p class=note>Top {NEIGHBOURS_SHOWN} of similar_items (cosine similarity) for the "
        f"{len(cards)} most frequent items.</p>"
        f'<div class="cards">{"".join(cards)}</div></section>'
    )


def _config(config: Any) -> str:
    if not isinstance(config, dict) or not config:
        return ""
    rows = "".join(
        f"<tr><td><code>{escape(key)}</code></td><td><code>{escape(value)}</code></td></tr>"
        for key, value in _flatten(config)
    )
    return (
        "<section><h2>Resolved config</h2><table class=config><thead><tr><th>key</th>"
        f"<th>value</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _flatten(config: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Nested config as (dotted key, JSON value) pairs, in the manifest's order."""
    rows: list[tuple[str, str]] = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows += _flatten(value, f"{name}.")
        else:
            rows.append((name, json.dumps(value, default=str, ensure_ascii=False)))
    return rows
