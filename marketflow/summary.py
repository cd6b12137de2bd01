"""What a person wants to see after a pipeline run, read from the stores themselves."""

from __future__ import annotations

from typing import Any

from psycopg2.extensions import cursor as PgCursor

from core.db import connect
from core.settings import Settings, get_settings


def _one(cur: PgCursor, query: str, args: tuple[Any, ...] = ()) -> Any:
    cur.execute(query, args)
    return cur.fetchone()


def collect(settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or get_settings()
    out: dict[str, Any] = {}
    with connect(settings.db.url) as conn, conn.cursor() as cur:
        out["raw_rows"], out["symbols"], out["first_date"], out["last_date"] = _one(
            cur,
            "select count(*), count(distinct symbol), min(trade_date), max(trade_date) from raw.prices",
        )
        out["last_batch"] = _one(
            cur,
            "select batch_id, provider, rows_in, rows_inserted, rows_updated, rows_unchanged, "
            "rows_rejected, status from raw.ingest_batches order by started_at desc limit 1",
        )
        out["rejected_rows"] = _one(cur, "select count(*) from raw.rejected_prices")[0]
        if _one(cur, "select to_regclass('marts.features_daily') is not null")[0]:
            out["feature_rows"], out["feature_complete_rows"] = _one(
                cur,
                "select count(*), count(*) filter (where ret_20d is not null and vol_20d is not null "
                "and rsi_14 is not null and volume_z_20d is not null) from marts.features_daily",
            )
        cur.execute(
            "select distinct on (suite) suite, success, evaluated, failed, created_at "
            "from monitoring.validation_runs order by suite, created_at desc"
        )
        out["validations"] = cur.fetchall()
        out["signals"] = _one(
            cur,
            "select trade_date, count(*), max(model_version) from signals.daily_signals "
            "group by trade_date order by trade_date desc limit 1",
        )
        out["drift"] = _one(
            cur,
            "select run_date, n_drifted_features, n_features, share_drifted, drift_detected, "
            "report_path from monitoring.drift_runs order by created_at desc limit 1",
        )
    conn.close()
    out["champion"] = _champion(settings)
    return out


def _champion(settings: Settings) -> dict[str, Any] | None:
    try:
        from ml.registry.card import champion_card
        from ml.registry.tracking import configure

        card = champion_card(configure(settings), settings.mlflow.model_name)
        if card is None:
            return None
        return {
            "version": card.version,
            "run_id": card.run_id,
            "experiment_id": card.experiment_id,
            "model": card.model,
            "metrics": dict(card.run_metrics),
            "test_window": (card.test_start, card.test_end),
        }
    except Exception as exc:  # the summary must print even if MLflow is down
        return {"error": str(exc)}


def render(info: dict[str, Any], settings: Settings | None = None, urls: bool = True) -> str:
    settings = settings or get_settings()
    lines = ["", "MarketFlow pipeline summary", "=" * 27]
    lines.append(
        f"raw.prices          {info['raw_rows']:,} rows, {info['symbols']} symbols, "
        f"{info['first_date']} .. {info['last_date']}"
    )
    if info.get("last_batch"):
        b = info["last_batch"]
        lines.append(
            f"last ingest batch   {b[7]}: {b[2]:,} in, {b[3]:,} inserted, {b[4]:,} updated, "
            f"{b[5]:,} unchanged, {b[6]:,} rejected (raw.rejected_prices holds {info['rejected_rows']:,})"
        )
    if "feature_rows" in info:
        lines.append(
            f"features_daily      {info['feature_rows']:,} rows "
            f"({info['feature_complete_rows']:,} with every window full)"
        )
    for suite, success, evaluated, failed, _ in info.get("validations", []):
        verdict = "passed" if success else f"FAILED ({failed} of {evaluated})"
        lines.append(f"validation          {suite}: {evaluated} expectations {verdict}")
    champ = info.get("champion")
    if champ and "error" not in champ:
        m = champ["metrics"]
        lines.append(
            f"champion            {settings.mlflow.model_name} v{champ['version']} ({champ['model']}), "
            f"test {champ['test_window'][0]}..{champ['test_window'][1]}"
        )
        lines.append(
            f"model metrics       IC {m.get('ic', float('nan')):.4f}, RankIC "
            f"{m.get('rank_ic', float('nan')):.4f}, direction {m.get('directional_accuracy', float('nan')):.1%}, "
            f"MAE {m.get('mae', float('nan')):.4f}, RMSE {m.get('rmse', float('nan')):.4f}"
        )
        if "sharpe" in m:
            lines.append(
                f"walk-forward        top-k Sharpe {m['sharpe']:.2f} "
                f"[{m.get('sharpe_ci_low', float('nan')):.2f}, "
                f"{m.get('sharpe_ci_high', float('nan')):.2f}], max drawdown "
                f"{m.get('max_drawdown', float('nan')):.1%}; equal-weight benchmark Sharpe "
                f"{m.get('benchmark_sharpe', float('nan')):.2f}"
            )
    elif champ:
        lines.append(f"champion            unavailable: {champ['error']}")
    else:
        lines.append("champion            none yet")
    if info.get("signals"):
        day, n, version = info["signals"]
        lines.append(f"signals             {n} published for {day} (model v{version})")
    if info.get("drift"):
        day, nd, nf, share, flag, path = info["drift"]
        verdict = "DRIFT" if flag else "no drift"
        lines.append(
            f"drift               {verdict}: {nd}/{nf} features drifted ({share:.0%}) on {day}"
        )
        lines.append(f"drift report        {path}")
    if urls:
        from marketflow.services import (
            DBT_DOCS_PATH,
            PIPELINE_USER,
            airflow_password_file,
            mlflow_identities_file,
        )

        # Where the password is, not the password: summaries end up in terminals and CI logs.
        pw = f"password in {airflow_password_file(settings)}"
        ml_pw = f"pipeline_password in {mlflow_identities_file(settings)}"
        lines += [
            "",
            f"Airflow UI          http://127.0.0.1:{settings.services.airflow_port}   (login admin / {pw})",
            f"MLflow UI           {settings.mlflow.tracking_uri}   (login {PIPELINE_USER} / {ml_pw})",
            f"dbt docs            http://127.0.0.1:{settings.services.airflow_port}{DBT_DOCS_PATH}"
            "   (the feature catalogue; Airflow UI -> Browse)",
            "Signals API         http://127.0.0.1:8000/api/v1/signals/latest",
            "Stop everything     make down",
        ]
    return "\n".join(lines)
