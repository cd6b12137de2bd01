"""`marketflow` — run any stage without Airflow, or the whole local stack for the demo.

The commands call the same functions as the Airflow tasks do.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.settings import REPO_ROOT, get_settings
from marketflow.airflow_api import AirflowApi

if TYPE_CHECKING:
    from ingest.loader import BatchResult

log = logging.getLogger("marketflow")
DAG_CHAIN = [
    "marketflow_ingest",
    "marketflow_features",
    "marketflow_training",
    "marketflow_scoring",
    "marketflow_monitoring",
]


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def cmd_db_init(args: argparse.Namespace) -> int:
    from core.db import init_all

    airflow = get_settings().services.airflow_database
    init_all(extra_databases=(airflow, "mlflow"))
    print(f"databases ready: {get_settings().db.url.rsplit('/', 1)[-1]}, {airflow}, mlflow")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ingest.loader import ingest

    settings = get_settings()
    provider = args.provider or settings.ingest.provider
    symbols = [s.strip().upper() for s in (args.symbols or "").split(",") if s] or None
    options = {"path": args.path} if getattr(args, "path", None) else {}
    if args.start and args.end and args.end < args.start:
        print(f"marketflow ingest: --end {args.end} is before --start {args.start}",
              file=sys.stderr)  # fmt: skip
        return 2
    if provider == "csv" and not options:
        print("marketflow ingest: the csv provider needs --path (a file, or a folder of .csv"
              " / .csv.gz files)", file=sys.stderr)  # fmt: skip
        return 2
    plan = None
    universe = getattr(args, "universe", None) or settings.ingest.universe
    if universe and not symbols:
        from ingest.universe import fetch_plan, read_universe, store_universe

        members = read_universe(universe)
        store_universe(settings.db.url, members, source=universe)
        plan = fetch_plan(members, args.start)
    with tqdm(desc=f"ingest {provider}", unit=" rows", unit_scale=True, file=sys.stderr) as bar:
        result = ingest(
            settings.db.url,
            provider,
            symbols,
            args.start,
            args.end,
            provider_options=options,
            on_progress=bar.update,
            plan=plan,
        )
    print(_ingest_table(result))
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    """Trigger ONE marketflow_ingest run for the whole range (one batch, one raw_prices event,
    one features run), instead of `airflow backfill`'s one run per day."""
    if args.end < args.start:
        print(f"--end {args.end} is before --start {args.start}", file=sys.stderr)
        return 2
    conf: dict[str, str] = {"start": args.start.isoformat(), "end": args.end.isoformat()}
    for key in ("provider", "path", "universe", "symbols"):
        if getattr(args, key, None):
            conf[key] = str(getattr(args, key))
    # Airflow reserves `backfill__` run ids for its own backfills: a manual run is refused one.
    run_id = f"range__{args.start}__{args.end}__{time.strftime('%Y%m%dT%H%M%S')}"
    api = AirflowApi.for_stack()
    since = api.trigger("marketflow_ingest", run_id, conf)
    print(f"triggered marketflow_ingest run {run_id} with {conf}")
    if args.wait:
        return 0 if _wait_for_chain(api, run_id, since, timeout=args.timeout) else 1
    return 0


def _ingest_table(result: BatchResult) -> str:
    rows = [
        ("rows in", result.rows_in),
        ("inserted", result.rows_inserted),
        ("updated (corrections)", result.rows_updated),
        ("unchanged", result.rows_unchanged),
        ("rejected", result.rows_rejected),
        *((f"  {why}", n) for why, n in result.rejected_by_reason.items()),
        ("failed to fetch", len(result.failures)),
        *((f"  {f['unit']}", f["error"]) for f in result.failures),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines = [
        f"batch {result.batch_id} ({result.provider}, {len(result.symbols)} symbols, "
        f"{result.start_date}..{result.end_date}) in {result.seconds:.1f}s",
        *(
            f"  {label:<{width}}{value:>12,}"
            if isinstance(value, int)
            else f"  {label:<{width}}{value}"
            for label, value in rows
        ),
    ]
    if result.rows_rejected:
        lines.append(
            f"  rejected rows: select * from raw.rejected_prices where batch_id = '{result.batch_id}'"
        )
    return "\n".join(lines)


def cmd_features(args: argparse.Namespace) -> int:
    from core.dbt import build, run_dbt
    from expectations.checkpoint import validate_or_raise

    url = get_settings().db.url
    print(validate_or_raise(url, "raw_prices", full=args.full).describe())
    if args.full:
        run_dbt(["build", "--vars", "{full_data_tests: true}"], url)
    else:
        build(url)
    for suite in ("labels_daily", "universe_daily", "features_daily"):
        print(validate_or_raise(url, suite, full=args.full).describe())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from expectations.checkpoint import run_checkpoint

    summary = run_checkpoint(get_settings().db.url, args.suite, full=args.full)
    print(summary.describe())
    return 0 if summary.success else 1


def _fold_bar(total: int, desc: str) -> tuple[Any, Callable[[int, dict[str, Any]], None]]:
    from tqdm import tqdm

    # MARKETFLOW_PROGRESS=1 also gives the neural models' trainer a bar per epoch.
    os.environ.setdefault("MARKETFLOW_PROGRESS", "1")
    bar = tqdm(total=total, desc=desc, unit=" fold", file=sys.stderr)

    def on_fold(index: int, metrics: dict) -> None:
        bar.set_postfix(rank_ic=f"{metrics.get('rank_ic', float('nan')):+.4f}")
        bar.update(1)

    return bar, on_fold


def _config_path(args: argparse.Namespace) -> Path:
    from ml.config import DEFAULT_CONFIG

    return Path(args.config) if getattr(args, "config", None) else DEFAULT_CONFIG


def cmd_train(args: argparse.Namespace) -> int:
    from ml.config import load_config
    from ml.prepare import prepare
    from ml.train import train

    config_path = _config_path(args)
    config = load_config(config_path)
    folds = len(prepare(get_settings().db.url, config).folds)
    bar, on_fold = _fold_bar(folds * len(config.models), "walk-forward")
    with bar:
        result = train(
            get_settings().db.url, config_path=config_path, on_fold=on_fold, force=args.force
        )
    if result.skipped:
        print(result.reason)
        return 0
    print(_metrics_table(result.candidates))
    print(f"{result.best_model} registered as v{result.version}; {result.reason}")
    return 0


def _metrics_table(candidates: dict) -> str:
    keys = ("rank_ic", "ic", "icir", "directional_accuracy", "mae", "sharpe", "max_drawdown",
            "benchmark_sharpe", "excess_annual_return", "gross_excess_annual_return",
            "turnover")  # fmt: skip
    lines = ["model".ljust(20) + "".join(k[:12].rjust(13) for k in keys)]
    for name, metrics in candidates.items():
        lines.append(
            name.ljust(20) + "".join(f"{metrics.get(k, float('nan')):13.4f}" for k in keys)
        )
    return "\n".join(lines)


def cmd_walk_forward(args: argparse.Namespace) -> int:
    """Walk-forward metrics of the configured models, without logging or registering."""
    from ml.config import load_config
    from ml.prepare import prepare
    from ml.train import walk_forward_zoo

    config = load_config(_config_path(args))
    names = args.models.split(",") if args.models else list(config.models)
    prepared = prepare(get_settings().db.url, config)
    bar, on_fold = _fold_bar(len(prepared.folds) * len(names), "walk-forward")
    with bar:
        results = walk_forward_zoo(prepared, names, track=False, on_fold=on_fold)
    print(_metrics_table({n: r.metrics for n, r in results.items()}))
    panel = prepared.panel
    print(f"panel: {len(panel.frame):,} rows x {len(panel.features)} features;"
          f" {len(prepared.folds)} folds; peak RSS {_peak_rss_gb():.2f} GB")  # fmt: skip
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """The configured models on the same folds, by signal and after-cost excess return."""
    from ml.config import load_config
    from ml.leaderboard import leaderboard
    from ml.prepare import prepare

    config_path = _config_path(args)
    config = load_config(config_path)
    names = args.models.split(",") if args.models else list(config.models)
    out_dir = Path(args.output) if args.output else get_settings().data_dir / "leaderboard"
    folds = len(prepare(get_settings().db.url, config).folds)
    bar, on_fold = _fold_bar(folds * len(names), "leaderboard")
    with bar:
        board = leaderboard(get_settings().db.url, config_path, names, out_dir, on_fold)
    print(f"strategy: {board.strategy}; {board.folds}")
    print(board.markdown())
    print(f"tear sheets and leaderboard.md in {out_dir}; peak RSS {_peak_rss_gb():.2f} GB")
    return 0


def _peak_rss_gb() -> float:
    """This process's peak resident memory (Linux reports kilobytes)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def cmd_tune(args: argparse.Namespace) -> int:
    import yaml
    from tqdm import tqdm

    from ml.tune import tune

    search = yaml.safe_load(Path(args.search).read_text())
    search = search.get("tune", search)
    total = int(search.get("trials", 0)) or None
    with tqdm(total=total, desc=f"tune {search['model']}", unit=" trial", file=sys.stderr) as bar:

        def on_trial(number: int, score: float) -> None:
            bar.set_postfix(valid_rank_ic=f"{score:+.4f}")
            bar.update(1)

        result = tune(get_settings().db.url, search, config_path=_config_path(args),
                      output=args.output, on_trial=on_trial)  # fmt: skip
    print(f"best {result.model} kwargs {result.best_kwargs}: valid RankIC {result.best_score:.4f}")
    print(f"config written to {result.output}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from ml.scoring import score_latest

    r = score_latest(get_settings().db.url, as_of=args.as_of)
    print(f"{r.rows} signals for {r.trade_date} from {r.model_name} v{r.model_version}")
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from ml.monitoring.monitor import drift_for_champion

    r = drift_for_champion(get_settings().db.url)
    print(f"drift detected: {r.drift_detected} ({r.share_drifted:.0%}); report {r.report_path}")
    return 0


def cmd_run_all(args: argparse.Namespace) -> int:
    """The whole chain in this process, without Airflow."""
    for step in (cmd_db_init, cmd_ingest, cmd_features, cmd_train, cmd_score, cmd_drift):
        print(f"== {step.__name__.removeprefix('cmd_')}")
        if step(args) != 0:
            return 1
    return cmd_summary(args)


def cmd_summary(args: argparse.Namespace) -> int:
    from marketflow.summary import collect, render

    print(render(collect(), urls=getattr(args, "urls", True)))
    return 0


def _airflow(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    airflow = str(Path(sys.executable).parent / "airflow")
    proc = subprocess.run(
        [airflow, *argv], env={**os.environ, **env}, capture_output=True, text=True, cwd=REPO_ROOT
    )
    if proc.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(argv)} failed:\n{proc.stderr[-4000:]}")
    return proc


def cmd_airflow(args: argparse.Namespace) -> int:
    """The `airflow` CLI with the stack's environment (its metadata database, home, config):
    `marketflow airflow dags list-runs marketflow_training`. Replaces this process."""
    from marketflow import services

    airflow = str(Path(sys.executable).parent / "airflow")
    argv = args.airflow_args[1:] if args.airflow_args[:1] == ["--"] else args.airflow_args
    os.execve(airflow, [airflow, *argv], {**os.environ, **services.airflow_env()})


def cmd_up(args: argparse.Namespace) -> int:
    """Databases, Airflow/MLflow migrations, dbt manifest, then every service."""
    from core.dbt import run_dbt
    from marketflow import services

    if getattr(args, "executor", None):
        # Read by the settings of everything started from here (services, their env).
        os.environ["MARKETFLOW_EXECUTOR"] = args.executor
    settings = get_settings()
    t0 = time.monotonic()
    cmd_db_init(args)
    env = services.airflow_env(settings)
    print("migrating Airflow's metadata database ...")
    _airflow("db", "migrate", env=env)
    # The pool GPU training takes with MARKETFLOW_TRAINING_POOL=gpu (one model at a time).
    _airflow("pools", "set", "gpu", "1", "GPU training: one model at a time", env=env)
    print("parsing the dbt project (manifest for Cosmos) ...")
    run_dbt(["parse"], settings.db.url)
    print("serializing DAGs ...")
    _airflow("dags", "reserialize", env=env)
    print("starting services ...")
    services.start_all(settings)
    _stack_mlflow_identity()  # generated by the first start: what follows here signs in with it
    print(f"stack up in {time.monotonic() - t0:.0f}s")
    return 0


def cmd_stack(args: argparse.Namespace) -> int:
    """`processes`: what `marketflow up` starts with these settings, in order. `compose`:
    write docker-compose.yml from stack.yaml and docker/compose.base.yaml (`--check`: only
    say whether the committed file is what would be written)."""
    from marketflow import stack
    from marketflow.services import services

    if args.what == "processes":
        for svc in services():
            kind = "once" if svc.oneshot else (svc.health_url or "-")
            print(f"{svc.name:<22} {kind:<48} {' '.join(svc.argv[1:])}")
        return 0
    text = stack.compose_text()
    current = stack.COMPOSE_FILE.read_text() if stack.COMPOSE_FILE.exists() else ""
    if args.check:
        if current != text:
            print(f"{stack.COMPOSE_FILE.name} is stale: run `marketflow stack compose`")
            return 1
        print(f"{stack.COMPOSE_FILE.name} is what stack.yaml gives")
        return 0
    stack.COMPOSE_FILE.write_text(text)
    print(f"wrote {stack.COMPOSE_FILE}")
    return 0


def cmd_mlflow_reader(args: argparse.Namespace) -> int:
    """Create (or re-password) MLflow's read-only user: the admin from MLFLOW_TRACKING_USERNAME
    and _PASSWORD, the reader from MARKETFLOW_MLFLOW_READER_USERNAME and _PASSWORD. A one-shot
    process of the stack (stack.yaml), once MLflow is healthy."""
    from marketflow.services import ensure_mlflow_reader

    settings = get_settings()
    admin = (settings.mlflow.username, settings.mlflow.password)
    reader = (settings.mlflow.reader_username, settings.mlflow.reader_password)
    if not all(admin) or not all(reader):
        raise ValueError(
            "set MLFLOW_TRACKING_USERNAME/_PASSWORD (MLflow's admin) and "
            "MARKETFLOW_MLFLOW_READER_USERNAME/_PASSWORD (the user to create)"
        )
    ensure_mlflow_reader(settings.mlflow.tracking_uri, admin, reader)
    print(f"MLflow user {reader[0]!r} can read {settings.mlflow.tracking_uri}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from marketflow import services

    services.stop_all()
    return 0


def _wait_for_chain(api: AirflowApi, run_id: str, since: datetime, timeout: float) -> bool:
    """Follow the triggered ingest run, then the asset-triggered runs after it, to the end
    (through Airflow's REST API, marketflow.airflow_api)."""

    deadline = time.monotonic() + timeout
    reported: dict[tuple[str, str], str] = {}
    while time.monotonic() < deadline:
        runs = [r for r in api.runs_since(DAG_CHAIN, since)
                if r.run_id == run_id or r.run_type == "asset_triggered"]  # fmt: skip
        announce_state = api.task_state("marketflow_ingest", run_id, "announce")
        for run in runs:
            key = (run.dag_id, run.run_id)
            if reported.get(key) != run.state:
                reported[key] = run.state
                print(f"  {run.dag_id:<24} {run.run_id:<48} {run.state}", flush=True)
            if run.state == "failed":
                print(
                    f"\n{run.dag_id} failed: open {api.base_url}/dags/{run.dag_id} for its task "
                    "logs",
                    file=sys.stderr,
                )
                return False
        if announce_state == "skipped" and reported.get((DAG_CHAIN[0], run_id)) == "success":
            # Nothing to announce, and the ingest run itself is over (its freshness check too).
            print("  no new or changed prices: the pipeline is already up to date")
            return True
        active = [s for s in reported.values() if s in ("queued", "running")]
        if (
            any(dag == DAG_CHAIN[-1] and s == "success" for (dag, _), s in reported.items())
            and not active
        ):
            return True
        time.sleep(3)
    print(f"timed out after {timeout:.0f}s waiting for the DAG chain", file=sys.stderr)
    return False


def cmd_demo(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    cmd_up(args)
    conf = {"provider": "sample", "start": args.start, "end": args.end}
    run_id = f"demo__{time.strftime('%Y%m%dT%H%M%S')}"
    print(
        f"triggering marketflow_ingest ({run_id}) with {conf}; the rest follows through Assets ..."
    )
    api = AirflowApi.for_stack()
    since = api.trigger("marketflow_ingest", run_id, conf)
    if not _wait_for_chain(api, run_id, since, timeout=args.timeout):
        return 1
    cmd_summary(args)
    print(f"\ndemo finished in {time.monotonic() - t0:.0f}s")
    return 0


def cmd_api_key(args: argparse.Namespace) -> int:
    from api.keys import create_key, list_keys, revoke_key

    url = get_settings().db.url
    if args.key_command == "create":
        key, token = create_key(url, args.name)
        print(f"created API key {key.name!r} (id {key.key_id}); it is shown only once:")
        print(token)
        return 0
    if args.key_command == "revoke":
        if not revoke_key(url, args.name):
            print(f"no active API key named {args.name!r}", file=sys.stderr)
            return 1
        print(f"revoked API key {args.name!r}")
        return 0
    for key in list_keys(url):
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        print(f"{key.key_id}\t{key.name}\t{key.key_prefix}...\t{key.created_at:%Y-%m-%d}\t{state}")
    return 0


EXECUTOR_HELP = (
    "Airflow's executor: local (LocalExecutor, the default) or celery (CeleryExecutor on "
    "MARKETFLOW_CELERY_BROKER_URL, a `default` and a `gpu` worker); default: $MARKETFLOW_EXECUTOR"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marketflow", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database setup")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("init", help="create roles, databases and schemas (idempotent)").set_defaults(
        func=cmd_db_init
    )

    p = sub.add_parser(
        "airflow",
        help="the airflow CLI against this stack (no environment to export first)",
        description="Runs `airflow ARGS...` with the environment `marketflow up` gives its "
        "services, e.g. `marketflow airflow dags list-runs marketflow_ingest`.",
    )
    p.add_argument("airflow_args", nargs=argparse.REMAINDER, metavar="ARGS")
    p.set_defaults(func=cmd_airflow)

    keys = sub.add_parser("api-key", help="create, revoke and list HTTP API keys")
    keys_sub = keys.add_subparsers(dest="key_command", required=True)
    for action, text in (("create", "print a new key once"), ("revoke", "revoke a key by name")):
        p = keys_sub.add_parser(action, help=text)
        p.add_argument("--name", required=True)
        p.set_defaults(func=cmd_api_key)
    keys_sub.add_parser("list", help="names, prefixes and states").set_defaults(func=cmd_api_key)

    p = sub.add_parser("ingest", help="load prices from a provider into raw.prices")
    p.add_argument(
        "--provider", help="sample | csv | yahoo | synthetic (default: $MARKETFLOW_DATA_PROVIDER)"
    )
    p.add_argument("--path", help="csv provider: a file or a folder of .csv / .csv.gz files")
    p.add_argument("--start", type=_date)
    p.add_argument("--end", type=_date)
    p.add_argument("--symbols", help="comma-separated, default: the universe, else all")
    p.add_argument(
        "--universe", help="universe file: symbol,start,active (default: $MARKETFLOW_UNIVERSE)"
    )
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "backfill", help="load a date range through the running stack as ONE ingest run"
    )
    p.add_argument("--start", type=_date, required=True)
    p.add_argument("--end", type=_date, required=True)
    p.add_argument("--provider", help="default: the Connection marketflow_provider, else settings")
    p.add_argument("--path", help="csv provider: a folder inside MARKETFLOW_INGEST_DATA_ROOTS")
    p.add_argument("--universe", help="universe file (default: the configured one)")
    p.add_argument("--symbols", help="comma-separated, default: the universe")
    p.add_argument("--wait", action="store_true", help="follow the run and the DAGs it triggers")
    p.add_argument("--timeout", type=float, default=6 * 3600, help="seconds --wait waits at most")
    p.set_defaults(func=cmd_backfill)

    full_help = (
        "validate every row, not only the rows changed since the suite last passed"
        " (what the weekly marketflow_quality_sweep DAG does)"
    )
    p = sub.add_parser("features", help="validate raw, dbt build, validate the three marts")
    p.add_argument("--full", action="store_true", help=full_help + "; dbt tests too")
    p.set_defaults(func=cmd_features)
    p = sub.add_parser("validate", help="run one Great Expectations checkpoint")
    p.add_argument(
        "suite", choices=["raw_prices", "features_daily", "labels_daily", "universe_daily"]
    )
    p.add_argument("--full", action="store_true", help=full_help)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("train", help="walk-forward the model zoo, log, register, gate promotion")
    p.add_argument("--config", help="model config YAML (default ml/config/models.yaml)")
    p.add_argument(
        "--force",
        action="store_true",
        help="train and register even if a version was trained on the same data and config",
    )
    p.set_defaults(func=cmd_train)
    p = sub.add_parser(
        "leaderboard",
        help="the models on the same folds: IC, excess return "
        "with and without costs, turnover, time, memory; a tear sheet each",
    )
    p.add_argument("--config", help="model config YAML (default ml/config/models.yaml)")
    p.add_argument("--models", help="comma-separated model names (default all)")
    p.add_argument(
        "--output",
        help="folder for leaderboard.md/.csv and the tear sheets "
        "(default $MARKETFLOW_DATA_DIR/leaderboard)",
    )
    p.set_defaults(func=cmd_leaderboard)
    p = sub.add_parser("walk-forward", help="walk-forward metrics of the models, nothing logged")
    p.add_argument("--config", help="model config YAML (default ml/config/models.yaml)")
    p.add_argument("--models", help="comma-separated model names (default all)")
    p.set_defaults(func=cmd_walk_forward)
    p = sub.add_parser("tune", help="grid or Optuna TPE search of one model's config")
    p.add_argument("search", help="search YAML (model, method, trials, space/grid)")
    p.add_argument("--config", help="model config YAML (default ml/config/models.yaml)")
    p.add_argument("--output", help="where to write the best config YAML")
    p.set_defaults(func=cmd_tune)
    p = sub.add_parser("score", help="champion scores the latest date into signals")
    p.add_argument("--as-of", type=_date)
    p.set_defaults(func=cmd_score)
    sub.add_parser("drift", help="Evidently drift report for the champion").set_defaults(
        func=cmd_drift
    )
    p = sub.add_parser("run-all", help="every stage in this process, without Airflow")
    for name in ("provider", "symbols", "path"):
        p.add_argument(f"--{name}")
    p.add_argument("--start", type=_date)
    p.add_argument("--end", type=_date)
    p.add_argument("--as-of", type=_date)
    p.set_defaults(func=cmd_run_all)
    sub.add_parser("summary", help="print what the last pipeline run produced").set_defaults(
        func=cmd_summary
    )
    p = sub.add_parser("up", help="start Airflow, MLflow and the API (pid files)")
    p.add_argument("--executor", choices=["local", "celery"], help=EXECUTOR_HELP)
    p.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop what `up`/`demo` started").set_defaults(func=cmd_down)
    sub.add_parser(
        "mlflow-reader", help="create MLflow's read-only user (the API's and scoring's identity)"
    ).set_defaults(func=cmd_mlflow_reader)
    p = sub.add_parser(
        "stack",
        help="the stack's processes (stack.yaml), or docker-compose.yml generated from them",
    )
    p.add_argument("what", choices=["processes", "compose"], nargs="?", default="processes")
    p.add_argument(
        "--check", action="store_true", help="compose: fail if docker-compose.yml differs"
    )
    p.set_defaults(func=cmd_stack)
    p = sub.add_parser("demo", help="up, then run the whole DAG chain on the sample data")
    p.add_argument("--start", default="2000-01-01", metavar="YYYY-MM-DD")
    p.add_argument("--end", default="2013-12-31", metavar="YYYY-MM-DD")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--executor", choices=["local", "celery"], help=EXECUTOR_HELP)
    p.set_defaults(func=cmd_demo)
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """Every subcommand's `--help` opens with what it does (its one-line help, then its
    function's docstring), and every date option shows its format."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, child in action.choices.items():
            if not child.description and helps.get(name):
                text = str(helps[name])
                func = child.get_default("func")
                doc = " ".join((func.__doc__ or "").split()) if func is not None else ""
                child.description = text[0].upper() + text[1:] + "." + (f" {doc}" if doc else "")
            for option in child._actions:
                if option.type is _date and option.metavar is None:
                    option.metavar = "YYYY-MM-DD"
            _describe(child)


def _stack_mlflow_identity() -> None:
    """The local stack's MLflow wants a sign-in: a command run from this checkout talks to it
    as the pipeline (marketflow/services.py wrote the credentials, owner-only), unless the
    environment names an identity already or MLflow is not a server."""
    from marketflow.services import mlflow_identities_file, pipeline_mlflow_env

    settings = get_settings()
    if settings.mlflow.username:
        return
    if not settings.mlflow.tracking_uri.startswith(("http://", "https://")):
        return
    if mlflow_identities_file(settings).exists():
        for key, value in pipeline_mlflow_env(settings).items():
            os.environ.setdefault(key, value)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("great_expectations", "alembic", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _stack_mlflow_identity()
    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        # Log lines are written above the progress bars instead of through them.
        with logging_redirect_tqdm():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one readable line, the traceback with -v
        if args.verbose:
            raise
        print(f"marketflow {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        hint = _hint(exc)
        if hint:
            print(f"  hint: {hint}", file=sys.stderr)
        return 1


def _hint(exc: BaseException) -> str | None:
    """What to do about the errors a new user meets first."""
    import psycopg2

    text = str(exc)
    missing_database = isinstance(exc, psycopg2.OperationalError) and "does not exist" in text
    if missing_database or isinstance(
        exc, psycopg2.errors.UndefinedTable | psycopg2.errors.InvalidSchemaName
    ):
        return "run `marketflow db init` first (creates the roles, databases and schemas)"
    if isinstance(exc, psycopg2.OperationalError) and "connection" in text:
        return "is PostgreSQL running? MARKETFLOW_DATABASE_URL says where it is"
    return None


if __name__ == "__main__":
    sys.exit(main())
