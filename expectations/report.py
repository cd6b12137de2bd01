"""A validation run as one self-contained HTML page (`<docs_dir>/<suite>/summary.html`): the
verdict, the scope, and every expectation with what was observed, failures first with their
example rows by key.

Why our own page beside Great Expectations' Data Docs: the Data Docs pages load Bootstrap,
jQuery, Font Awesome and Vega from CDNs and render unstyled and without their tables' behaviour
on a machine without internet, and GX has no offline option (upstream declined to bundle the
assets; vendoring them by hand is what we will not do). This page has inline CSS, no script
and no external reference, so it reads the same anywhere; the Data Docs site stays beside it
(`index.html`) for those who have a network.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin-top: 12px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
tr.failed td {{ background: #fdecec; }}
.ok {{ color: #176f2c; font-weight: 600; }} .bad {{ color: #b00020; font-weight: 600; }}
code {{ font-size: 90%; white-space: pre-wrap; }}
</style></head>
<body>
<h1 id="verdict">{title}: <span class="{cls}">{verdict}</span></h1>
<p id="scope">{asset}: {met} of {evaluated} expectations met; {rows}{scope}. Run at {when}.</p>
<table id="expectations">
<tr><th>expectation</th><th>column</th><th>result</th><th>expected</th><th>observed</th></tr>
{rows_html}
</table>
</body></html>
"""


def _code(value: Any) -> str:
    if value in (None, {}, []):
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str, indent=1)
    return f"<code>{html.escape(text)}</code>"


def write_summary_page(
    path: Path,
    *,
    suite: str,
    data_asset: str,
    success: bool,
    scope: str,
    rows_validated: int | None,
    run_at: str,
    expectations: list[dict[str, Any]],
) -> Path:
    """Write the page; `expectations` has one dict per expectation: expectation, column,
    success, expected, observed (as `expectations.checkpoint` reads them from GX)."""
    ordered = sorted(expectations, key=lambda e: bool(e["success"]))  # failures first
    rows_html = "\n".join(
        f'<tr class="{"passed" if e["success"] else "failed"}">'
        f"<td>{html.escape(str(e['expectation']))}</td>"
        f"<td>{html.escape(str(e.get('column') or ''))}</td>"
        f"<td>{'passed' if e['success'] else 'FAILED'}</td>"
        f"<td>{_code(e.get('expected'))}</td><td>{_code(e.get('observed'))}</td></tr>"
        for e in ordered
    )
    met = sum(bool(e["success"]) for e in expectations)
    page = PAGE.format(
        title=html.escape(f"Validation of {suite}"),
        cls="ok" if success else "bad",
        verdict="passed" if success else "FAILED",
        asset=html.escape(data_asset),
        met=met,
        evaluated=len(expectations),
        rows="" if rows_validated is None else f"{rows_validated:,} rows, ",
        scope=html.escape(scope),
        when=html.escape(run_at),
        rows_html=rows_html,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
