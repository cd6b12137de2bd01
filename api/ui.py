"""Pages for people: `/` (latest signals, the champion's card, drift) and `/api/v1/docs`.

`/` is rendered on the server from the same read-only data the API serves and needs no key,
like health: it shows what the published signals are, not anything an app could not already
see with a key, and a person should not paste a key into a page. Both pages are
self-contained (inline CSS and JS, no CDN), so they work on a machine without internet.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template_string
from werkzeug.exceptions import HTTPException

from api import champion as champion_mod
from api.db import fetch_all

bp = Blueprint("ui", __name__)
PAGE_SIGNALS = 50

_PAGE_SIGNALS_SQL = """
with latest as (
    select trade_date, model_name from signals.daily_signals
    order by trade_date desc, created_at desc, model_name limit 1
)
select s.trade_date, s.symbol, s.score, s.rank, s.signal, s.model_name, s.model_version
from signals.daily_signals s join latest using (trade_date, model_name)
order by s.rank, s.symbol
limit %(limit)s
"""

_PAGE_DRIFT_SQL = """
select run_date, current_start, current_end, n_features, n_drifted_features, share_drifted,
       drift_detected, prediction_drifted, model_version, run_id::text as run_id
from monitoring.drift_runs order by run_date desc, created_at desc limit 1
"""

_PAGE_QUALITY_SQL = """
select run_date, n_days, ic, hit_rate, top_k, top_k_return
from monitoring.live_quality order by run_date desc, created_at desc limit 1
"""

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:70rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse}td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;
text-align:left}th{background:#f4f4f4}.long{color:#0a7a2f}.short{color:#b00020}
.ok{color:#0a7a2f}.bad{color:#b00020;font-weight:bold}.muted{color:#777}
code{background:#f4f4f4;padding:0 .2rem}
"""

_HOME = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MarketFlow signals</title>
<style>{{ style }}</style></head><body>
<h1>MarketFlow signals</h1>
<p class="muted">API for apps: <a href="/api/v1/docs">/api/v1/docs</a>
(<a href="/api/v1/openapi.json">OpenAPI</a>).</p>

<section id="signals"><h2>Latest signals</h2>
{% if signals %}
<p>Trade date <strong id="trade-date">{{ signals[0].trade_date }}</strong>,
model {{ signals[0].model_name }} v{{ signals[0].model_version }}
(top {{ signals|length }} by rank).</p>
<table><thead><tr><th>Rank</th><th>Symbol</th><th>Signal</th><th>Score</th></tr></thead>
<tbody>{% for s in signals %}<tr><td>{{ s.rank }}</td><td>{{ s.symbol }}</td>
<td class="{{ s.signal }}">{{ s.signal }}</td><td>{{ "%.4f"|format(s.score) }}</td></tr>
{% endfor %}</tbody></table>
{% else %}<p>No signals yet.</p>{% endif %}
</section>

<section id="champion"><h2>Champion model</h2>
{% if card_error %}<p class="bad">{{ card_error }}</p>
{% elif not card %}<p>No champion model yet.</p>
{% else %}
<table>
<tr><th>Name</th><td>{{ card.name }} v{{ card.version }}</td></tr>
<tr><th>Model</th><td>{{ card.model or "—" }}</td></tr>
<tr><th>Label</th><td>{{ card.label or "—" }}</td></tr>
<tr><th>Trained on</th><td>{{ card.trained_window.start or "?" }} to
{{ card.trained_window.end or "?" }}</td></tr>
{% if card.test_window.start %}<tr><th>Tested on</th><td>{{ card.test_window.start }} to
{{ card.test_window.end }}</td></tr>{% endif %}
{% for name, value in card.metrics.items() %}
<tr><th>{{ name }}</th><td>{{ "%.4f"|format(value) }}</td></tr>{% endfor %}
<tr><th>MLflow run</th><td>{% if card.mlflow_run_url %}<a href="{{ card.mlflow_run_url }}">
{{ card.run_id }}</a>{% else %}<code>{{ card.run_id }}</code>{% endif %}</td></tr>
</table>
{% if card.equity_curve_url %}
<p><img id="equity-curve" src="/equity_curve.png" alt="Equity curve of the champion"
width="640"></p>{% else %}<p class="muted" id="no-equity-curve">No equity curve.</p>{% endif %}
{% endif %}
</section>

<section id="drift"><h2>Drift</h2>
{% if drift %}
<p>{% if drift.drift_detected %}<span class="bad">Drift detected</span>
{% else %}<span class="ok">No drift</span>{% endif %} on {{ drift.run_date }}:
{{ drift.n_drifted_features }} of {{ drift.n_features }} features drifted
({{ "%.0f"|format(100 * drift.share_drifted) }}%), current window {{ drift.current_start }}
to {{ drift.current_end }}, model v{{ drift.model_version }}.
{% if drift.prediction_drifted is not none %}Predictions:
{{ "drifted" if drift.prediction_drifted else "stable" }}.{% endif %}</p>
{% else %}<p>No drift monitoring runs yet.</p>{% endif %}
{% if quality %}<p>Live quality over {{ quality.n_days }} labelled days:
IC {{ fmt(quality.ic) }}, hit rate {{ fmt(quality.hit_rate) }},
top-{{ quality.top_k }} return {{ fmt(quality.top_k_return) }}.</p>{% endif %}
</section>
</body></html>
"""


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


@bp.get("/")
def home() -> str:
    signals = fetch_all(_PAGE_SIGNALS_SQL, {"limit": PAGE_SIGNALS})
    drift = fetch_all(_PAGE_DRIFT_SQL)
    quality = fetch_all(_PAGE_QUALITY_SQL)
    card: dict[str, Any] | None = None
    card_error = None
    try:
        card = champion_mod.model_card()
    except HTTPException as exc:
        card_error = exc.description
    return render_template_string(
        _HOME,
        style=_STYLE,
        signals=signals,
        card=card,
        card_error=card_error,
        drift=drift[0] if drift else None,
        quality=quality[0] if quality else None,
        fmt=_fmt,
    )


@bp.get("/equity_curve.png")
def equity_curve() -> Response:
    return champion_mod.equity_curve_response()


_DOCS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MarketFlow API docs</title>
<style>{{ style }}
.op{border:1px solid #ddd;border-radius:4px;margin:1rem 0;padding:.5rem 1rem}
.method{font-weight:bold;text-transform:uppercase;margin-right:.5rem}
pre{background:#f7f7f7;padding:.5rem;overflow:auto;max-height:20rem}
label{display:block;margin:.2rem 0}input,textarea{font-family:monospace}
</style></head><body>
<h1>MarketFlow API</h1>
<p>Rendered from <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.
Send <code>Authorization: Bearer &lt;key&gt;</code>; create a key with
<code>marketflow api-key create --name NAME</code>.</p>
<label>API key <input id="key" size="60" placeholder="mf_..."></label>
<div id="ops">Loading…</div>
<script>
const el = (tag, attrs = {}, text = "") => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
};
async function main() {
  const spec = await (await fetch("/api/v1/openapi.json")).json();
  const ops = document.getElementById("ops");
  ops.textContent = "";
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const box = el("div", {class: "op"});
      const head = el("h3");
      head.append(el("span", {class: "method"}, method), el("code", {}, path));
      box.append(head, el("p", {}, op.summary || ""));
      const inputs = {};
      for (const p of op.parameters || []) {
        const label = el("label", {}, `${p.name} (${p.in})${p.required ? " *" : ""} `);
        const input = el("input", {name: p.name, size: 30});
        inputs[p.name] = [p, input];
        label.append(input);
        box.append(label);
      }
      let body = null;
      if (op.requestBody) {
        body = el("textarea", {rows: 3, cols: 60}, '{"symbols": ["AAPL"]}');
        box.append(el("label", {}, "JSON body"), body);
      }
      const out = el("pre");
      const send = el("button", {}, "Send");
      send.onclick = async () => {
        let url = path;
        const query = new URLSearchParams();
        for (const [name, [p, input]] of Object.entries(inputs)) {
          if (!input.value) continue;
          if (p.in === "path") url = url.replace(`{${name}}`, encodeURIComponent(input.value));
          else query.append(name, input.value);
        }
        const headers = {};
        const key = document.getElementById("key").value;
        if (key) headers["Authorization"] = `Bearer ${key}`;
        const init = {method: method.toUpperCase(), headers};
        if (body) { headers["Content-Type"] = "application/json"; init.body = body.value; }
        const response = await fetch(query.size ? `${url}?${query}` : url, init);
        const text = await response.text();
        let shown = text;
        try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) {}
        out.textContent = `${response.status} ${response.statusText}\\n${shown}`;
      };
      box.append(send, out);
      ops.append(box);
    }
  }
}
main().catch(err => { document.getElementById("ops").textContent = String(err); });
</script></body></html>
"""


def docs_page() -> str:
    return render_template_string(_DOCS, style=_STYLE)


__all__ = ["bp", "docs_page"]
