"""The backtest's HTML report: one self-contained file an analyst opens offline.

Guarantees: a single HTML5 document with its CSS inline and its charts as inline SVG; no
script, no external stylesheet, image, font or other resource, so it renders the same with
no network. Every piece of text from the history (titles, snippets, why-sentences, ids, URLs)
is HTML-escaped; article URLs are shown as text, not as links, so that nothing in the file
points outside it. A Content-Security-Policy in the document makes the browser refuse any
load or script all the same. Checked in a real headless Chromium
(tests/pipelines/test_backtest_browser.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html import escape

from .backtest import AlertLog, DatedAlert, Diff, History, Result

# The browser itself refuses anything the document would load or run (and says so on its
# console): what a later change might add by mistake cannot reach out.
CSP = "default-src 'none'; style-src 'unsafe-inline'"
MAX_LISTED = 200  # alerts per list in the report; the text report lists them all
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:70em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}
.chart{margin:.5em 0 1.2em}.chart h3{font-size:1em;margin:.2em 0}
.new{fill:#2b6cb0}.current{fill:#b0b0b0}.legend span{display:inline-block;width:1em;height:.8em;margin:0 .3em}
.alert{border-left:4px solid #2b6cb0;padding:.3em .8em;margin:.6em 0;background:#f7f9fc}
.alert.dropped{border-color:#c53030;background:#fcf7f7}.meta{color:#555;font-size:.9em}
.why{font-style:italic}.plus{color:#276749}.minus{color:#c53030}
"""


def _days(results: list[Result]) -> list[str]:
    seen = sorted({d for r in results for d in r.per_day} | {d for r in results for d in r.alerts.days()})
    if not seen:
        return []
    first, last = (datetime.strptime(d, "%Y-%m-%d").replace(tzinfo=UTC) for d in (seen[0], seen[-1]))
    return [(first + timedelta(days=i)).strftime("%Y-%m-%d") for i in range((last - first).days + 1)]


def _per_day(result: Result, subject: str | None) -> dict[str, int]:
    return result.alerts.per_day(subject)


def bar_chart(title: str, days: list[str], new: dict[str, int], current: dict[str, int] | None) -> str:
    """Alerts per day as an inline SVG: one bar per day (two with a current version)."""
    width_per_day = 14 if current is None else 20
    height, top, bottom, left = 80, 14, 18, 28
    peak = max([1, *new.values(), *(current or {}).values()])
    width = left + width_per_day * max(len(days), 1) + 4
    parts = [f'<svg width="{width}" height="{height + top + bottom}" '
             f'role="img" aria-label="{escape(title)}">',
             f'<text x="0" y="{top + 8}" font-size="10">{peak}</text>',
             f'<text x="0" y="{top + height}" font-size="10">0</text>',
             f'<line x1="{left - 2}" y1="{top + height}" x2="{width}" y2="{top + height}" stroke="#999"/>']
    for i, day in enumerate(days):
        x = left + i * width_per_day
        series = [("new", new.get(day, 0))] + ([("current", current.get(day, 0))] if current is not None else [])
        bar = (width_per_day - 4) // len(series)
        for j, (cls, value) in enumerate(series):
            h = round(height * value / peak)
            parts.append(f'<rect class="{cls}" x="{x + j * bar}" y="{top + height - h}" width="{bar}" height="{h}">'
                         f'<title>{day} {cls}: {value}</title></rect>')
        if i == 0 or i == len(days) - 1 or (len(days) > 14 and i % 7 == 0):
            parts.append(f'<text x="{x}" y="{top + height + 12}" font-size="9">{day[5:]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _counts_table(title: str, new: dict, current: dict | None) -> str:
    keys = sorted(set(new) | set(current or ()))
    head = "<th>articles</th><th>alerts</th>" + ("<th>current</th><th>change</th>" if current is not None else "")
    rows = []
    for key in keys:
        c = new.get(key)
        n_alerts = c.alerts if c else 0
        row = f"<td>{escape(key)}</td><td>{c.articles if c else 0}</td><td>{n_alerts}</td>"
        if current is not None:
            old = current.get(key)
            o_alerts = old.alerts if old else 0
            change = n_alerts - o_alerts
            cls = "plus" if change > 0 else "minus" if change < 0 else ""
            row += f'<td>{o_alerts}</td><td class="{cls}">{change:+d}</td>'
        rows.append(f"<tr>{row}</tr>")
    return f"<table><tr><th>{escape(title)}</th>{head}</tr>{''.join(rows)}</table>"


def _alert_block(a: DatedAlert, dropped: bool = False) -> str:
    al = a.alert
    subject = f"topic {al.topic_id} · " if al.topic_id else ""
    return (f'<div class="alert{" dropped" if dropped else ""}">'
            f'<div class="meta">{escape(a.day)} · {escape(al.kind)} · {escape(al.severity)} · '
            f'{escape(subject)}org {escape(al.org_id or "-")} · article {escape(al.article_id)}'
            f'{" · " + escape(al.url) if al.url else ""}</div>'
            f'<div><b>{escape(al.title)}</b></div><div>{escape(al.snippet)}</div>'
            f'<div class="why">{escape(al.why)}</div></div>')


def top(alerts: AlertLog, limit: int = MAX_LISTED) -> list[DatedAlert]:
    """Most urgent first, then by day (the order of the report's lists), at most ``limit``."""
    return alerts.top(limit)


def _alert_list(title: str, alerts: AlertLog, dropped: bool = False) -> str:
    shown = top(alerts)
    more = (f"<p>… and {len(alerts) - len(shown)} more (all are in the text report).</p>"
            if len(alerts) > len(shown) else "")
    body = "".join(_alert_block(a, dropped) for a in shown) or "<p>none</p>"
    return f"<h2>{escape(title)} ({len(alerts)})</h2>{body}{more}"


def _feedback_section(verdicts: list, new: Result) -> str:
    from newsradar import feedback

    parts = ["<h2>Analyst feedback</h2>"]
    judged = {v.alert_id: v.verdict for v in feedback.latest(verdicts)}
    mine = [a.alert.alert_id for a in new.alerts if a.alert.alert_id in judged]
    tp = sum(judged[a] == "tp" for a in mine)
    parts.append(f"<p>{len(judged)} alerts judged; {escape(new.watchlist)} raised {len(mine)} of them "
                 f"({tp} true, {len(mine) - tp} false positives).</p>")
    for title, table in (("organization", feedback.by_alias(verdicts)), ("topic", feedback.by_term(verdicts))):
        what = "alias" if title == "organization" else "term"
        rows = "".join(f"<tr><td>{escape(subject)}</td><td>{escape(name)}</td><td>{p.tp}</td><td>{p.fp}</td>"
                       f"<td>{p.precision:.2f}</td></tr>" for (subject, name), p in table.items())
        parts.append(f"<table><tr><th>{title}</th><th>{what}</th><th>tp</th><th>fp</th><th>precision</th></tr>"
                     f"{rows}</table>" if rows else f"<p>No {title} alerts judged.</p>")
    return "".join(parts)


def render(history: History, new: Result, current: Result | None = None, changes: Diff | None = None,
           verdicts: list | None = None) -> str:
    results = [new] + ([current] if current is not None else [])
    days = _days(results)
    legend = ""
    if current is not None:
        legend = (f'<p class="legend"><svg width="12" height="10"><rect class="new" width="12" height="10"/></svg> '
                  f'{escape(new.watchlist)} <svg width="12" height="10"><rect class="current" width="12" height="10"/>'
                  f'</svg> {escape(current.watchlist)} (current)</p>')
    charts = [f'<div class="chart"><h3>all alerts</h3>'
              f'{bar_chart("all alerts", days, _per_day(new, None), _per_day(current, None) if current else None)}</div>']
    for kind, pick in (("organization", lambda r: r.per_org), ("topic", lambda r: r.per_topic)):
        subjects = sorted(set(pick(new)) | set(pick(current) if current else ()))
        for subject in subjects:
            new_days = _per_day(new, subject)
            old_days = _per_day(current, subject) if current else None
            if not new_days and not old_days:
                continue
            title = f"{kind} {subject}"
            charts.append(f'<div class="chart"><h3>{escape(title)}</h3>'
                          f'{bar_chart(title, days, new_days, old_days)}</div>')
    span = f"{days[0]} to {days[-1]}" if days else "no dated records"
    summary = (f"<p>{new.records:,} records from {escape(history.description)}, {span}. "
               f"{escape(new.watchlist)}: {new.articles:,} articles tagged, {new.mentions:,} mentions, "
               f"{len(new.alerts):,} alerts; {new.repeats:,} repeats, {len(new.dead):,} dead-lettered, "
               f"{len(history.malformed):,} malformed input records.")
    if current is not None:
        summary += f" {escape(current.watchlist)} (current): {len(current.alerts):,} alerts."
    summary += " Nobody was notified: a backtest never calls alert sinks.</p>"
    sections = [
        f"<h1>Backtest of {escape(new.watchlist)}</h1>", summary,
        "<h2>Alerts per day</h2>", legend, *charts,
        "<h2>Per organization</h2>",
        _counts_table("organization", new.per_org, current.per_org if current else None),
        "<h2>Per topic</h2>",
        _counts_table("topic", new.per_topic, current.per_topic if current else None),
    ]
    if verdicts is not None:
        sections.append(_feedback_section(verdicts, new))
    if changes is not None:
        sections.append(_alert_list(f"New alerts (raised only by {new.watchlist})", changes.added))
        sections.append(_alert_list(f"Lost alerts (raised only by {current.watchlist})", changes.dropped, dropped=True))
    else:
        sections.append(_alert_list("Alerts", new.alerts))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>Backtest of {escape(new.watchlist)}</title><style>{_CSS}</style></head><body>"
            + "".join(sections) + "</body></html>\n")
