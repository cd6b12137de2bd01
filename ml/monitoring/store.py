"""The SQL of monitoring: the feature windows drift compares, the published scores, and the
`monitoring.*` rows it writes (drift runs and their features, live quality, retrain requests).
Every function takes a database URL and opens one unit of work through core.db.connect."""

from __future__ import annotations

import json
import math
import uuid
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from psycopg2 import sql
from psycopg2.extras import execute_values

from core.columnar import read_frame
from core.db import connect
from ml.monitoring.drift import DriftResult, FeatureDrift

if TYPE_CHECKING:
    from ml.monitoring.live_quality import LiveQuality

FEATURES_TABLE = sql.SQL("marts.features_daily")

_SCORES_SQL = """
select score from signals.daily_signals
where model_name = %s and model_version = %s and trade_date between %s and %s
  and score = score and score not in ('Infinity', '-Infinity')
"""


def read_windows(
    database_url: str,
    features: list[str],
    reference_window: tuple[date, date],
    current_days: int,
    up_to: date | None,
    reference_rows: int = 0,
) -> tuple[tuple[date, date], pd.DataFrame, pd.DataFrame]:
    """(current window, reference rows, current rows): the current window is the last
    `current_days` trading days up to `up_to` (default: the latest). With `reference_rows`
    the reference is a fixed sample of about that many rows of its window (see
    `_sample_every`); 0: every row."""
    with connect(database_url) as conn:
        current_start, current_end = _current_window(conn, current_days, up_to)
        every = _sample_every(conn, reference_window, reference_rows)
    reference = _load_features(database_url, features, *reference_window, every=every)
    current = _load_features(database_url, features, current_start, current_end)
    return (current_start, current_end), reference, current


def _sample_every(conn: Any, window: tuple[date, date], rows: int) -> int:
    """Keep one row in `every` of the reference window so that about `rows` remain.

    A real universe's training window is years of hundreds of symbols (1.3M rows on the dev
    universe): read whole, Evidently took 7 minutes and 8 GB for a drift a sample of 50k rows
    estimates as well. The sample is a hash of the key, not random(): the same rows every day,
    so day-to-day changes in the drift scores come from the current window only.
    """
    if rows <= 0:
        return 1
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("select count(*) from {table} where trade_date between %s and %s").format(
                table=FEATURES_TABLE
            ),
            window,
        )
        (n_rows,) = cur.fetchone()
    return max(1, -(-int(n_rows) // rows))


def _current_window(conn: Any, current_days: int, up_to: date | None) -> tuple[date, date]:
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                """
                select min(trade_date), max(trade_date)
                from (
                    select distinct trade_date
                    from {table}
                    where %(up_to)s::date is null or trade_date <= %(up_to)s::date
                    order by trade_date desc
                    limit %(days)s
                ) as last_days
                """
            ).format(table=FEATURES_TABLE),
            {"up_to": up_to, "days": current_days},
        )
        start, end = cur.fetchone()
    if end is None:
        bound = f" up to {up_to}" if up_to else ""
        raise ValueError(f"marts.features_daily has no trading days{bound}: no current window")
    return start, end


def _load_features(
    url: str, features: list[str], start: date, end: date, every: int = 1
) -> pd.DataFrame:
    """Rows of the window with every feature present; NULL features (warm-up days) are dropped.
    `every` > 1 keeps the rows whose key hashes to 0 modulo `every` (a fixed sample).
    Read as Arrow columns (a reference window is years of rows), returned as float64."""
    columns = ", ".join('"' + f.replace('"', '""') + '"' for f in features)
    not_null = " and ".join('"' + f.replace('"', '""') + '" is not null' for f in features)
    sample = (
        f" and abs(hashtext(symbol || trade_date::text)::bigint) % {int(every)} = 0"
        if every > 1
        else ""
    )
    query = (
        f"select symbol, trade_date, {columns} from marts.features_daily"
        f" where trade_date between $1 and $2 and {not_null}{sample} order by trade_date, symbol"
    )
    frame = read_frame(url, query, (start, end))
    return frame.astype({f: "float64" for f in features})


def published_scores(
    database_url: str, model_name: str, model_version: str, start: date, end: date
) -> list[float]:
    """The finite scores `model_name` v`model_version` published from `start` to `end`."""
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(_SCORES_SQL, (model_name, model_version, start, end))
        return [float(row[0]) for row in cur.fetchall()]


def record_drift_run(
    database_url: str,
    *,
    run_date: date,
    reference_window: tuple[date, date],
    current_window: tuple[date, date],
    result: DriftResult,
    model_name: str | None,
    model_version: str | None,
    mlflow_run_id: str | None,
    prediction: FeatureDrift | None,
) -> uuid.UUID:
    """Replace the `monitoring.drift_runs` row of (`run_date`, model) and its features' rows
    with `result`; returns the new run id."""
    reference_start, reference_end = reference_window
    current_start, current_end = current_window
    report_path: Path = result.report_path
    run_id = uuid.uuid4()
    with connect(database_url) as conn, conn.cursor() as cur:
        # No unique key covers (run_date, model): serialise writers of the same key instead.
        cur.execute(
            "select pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"monitoring.drift_runs|{run_date}|{model_name}|{model_version}",),
        )
        cur.execute(
            """
            delete from monitoring.drift_runs
            where run_date = %s
              and model_name is not distinct from %s
              and model_version is not distinct from %s
            """,
            (run_date, model_name, model_version),
        )
        cur.execute(
            """
            insert into monitoring.drift_runs (
                run_id, run_date, reference_start, reference_end, current_start, current_end,
                n_features, n_drifted_features, share_drifted, drift_detected, report_path,
                model_name, model_version, mlflow_run_id, prediction_drift_score,
                prediction_drifted
            ) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            (
                str(run_id),
                run_date,
                reference_start,
                reference_end,
                current_start,
                current_end,
                result.n_features,
                result.n_drifted_features,
                result.share_drifted,
                result.drift_detected,
                str(report_path),
                model_name,
                model_version,
                mlflow_run_id,
                prediction["score"] if prediction else None,
                prediction["drifted"] if prediction else None,
            ),
        )
        execute_values(
            cur,
            """
            insert into monitoring.drift_features
                (run_id, feature, drifted, score, method, threshold)
            values %s
            """,
            [
                (
                    str(run_id),
                    name,
                    drift["drifted"],
                    drift["score"] if math.isfinite(drift["score"]) else None,
                    drift["method"],
                    drift["threshold"],
                )
                for name, drift in result.per_feature.items()
            ],
        )
    return run_id


def drift_run_date(database_url: str, run_id: uuid.UUID | None) -> date:
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("select run_date from monitoring.drift_runs where run_id = %s", (str(run_id),))
        row = cur.fetchone()
    if row is None:
        raise RuntimeError(f"drift run {run_id} was not recorded")
    day: date = row[0]
    return day


def published_with_labels(
    database_url: str, model_name: str, label: str, window_days: int, up_to: date | None
) -> pd.DataFrame:
    """The last `window_days` labelled days of `model_name`'s published signals, each row with
    the realised `label`."""
    query = sql.SQL(
        """
        with labelled as (
            select s.trade_date, s.symbol, s.score, s.rank, s.signal, l.{label} as realised
            from signals.daily_signals s
            join marts.labels_daily l using (symbol, trade_date)
            where s.model_name = %(model)s
              and l.{label} is not null
              and (%(up_to)s::date is null or s.trade_date <= %(up_to)s::date)
        ),
        last_days as (
            select distinct trade_date from labelled order by trade_date desc limit %(days)s
        )
        select trade_date, symbol, score, rank, signal, realised
        from labelled join last_days using (trade_date)
        order by trade_date, rank
        """
    ).format(label=sql.Identifier(label))
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(query, {"model": model_name, "up_to": up_to, "days": window_days})
        rows = cur.fetchall()
    return pd.DataFrame(
        rows, columns=["trade_date", "symbol", "score", "rank", "signal", "realised"]
    )


def record_live_quality(database_url: str, quality: LiveQuality) -> None:
    """Upsert the `monitoring.live_quality` row of `quality`."""
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            """
            insert into monitoring.live_quality (run_date, model_name, model_version, label,
                window_start, window_end, n_days, ic, hit_rate, top_k, top_k_return)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            on conflict (run_date, model_name, model_version) do update set
                label = excluded.label, window_start = excluded.window_start,
                window_end = excluded.window_end, n_days = excluded.n_days, ic = excluded.ic,
                hit_rate = excluded.hit_rate, top_k = excluded.top_k,
                top_k_return = excluded.top_k_return, created_at = now()
            """,
            (
                quality.run_date,
                quality.model_name,
                quality.model_version,
                quality.label,
                quality.window_start,
                quality.window_end,
                quality.n_days,
                quality.ic,
                quality.hit_rate,
                quality.top_k,
                quality.top_k_return,
            ),
        )


def last_retrain_request(database_url: str, model_name: str) -> date | None:
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "select max(run_date) from monitoring.retrain_requests where model_name = %s",
            (model_name,),
        )
        row = cur.fetchone()
    last: date | None = row[0] if row else None
    return last


def record_retrain_request(
    database_url: str,
    run_date: date,
    model_name: str,
    model_version: str | None,
    reasons: list[str],
) -> None:
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            """
            insert into monitoring.retrain_requests (run_date, model_name, model_version, reasons)
            values (%s, %s, %s, %s)
            """,
            (run_date, model_name, model_version, json.dumps(reasons)),
        )
