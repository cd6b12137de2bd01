"""ml/data/handler.py: labels and horizons, feature discovery, reading the marts."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import pandas as pd
import psycopg2
import pytest
from psycopg2 import sql

from ml.data.handler import (
    FEATURES,
    discover_features,
    label_horizon,
    load_frame,
    load_panel,
    read_panel,
    read_sql,
)

# --- label_horizon -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "horizon"), [("fwd_ret_1d", 1), ("fwd_ret_5d", 5), ("fwd_ret_20d", 20)]
)
def test_label_horizon_reads_the_days_from_the_name(label: str, horizon: int) -> None:
    assert label_horizon(label) == horizon


@pytest.mark.parametrize(
    "label",
    ["ret_5d", "fwd_ret_5", "fwd_ret_d", "fwd_ret_5d_clipped", "fwd_ret_-5d", "FWD_RET_5D", ""],
)
def test_label_horizon_rejects_names_without_a_horizon(label: str) -> None:
    with pytest.raises(ValueError, match=r"cannot tell the horizon .* expected fwd_ret_<N>d"):
        label_horizon(label)


# --- marts ---------------------------------------------------------------------------


D1, D2, D3 = date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)


@pytest.fixture
def marts_url(make_database: Callable[[], str]) -> str:
    """Tiny marts tables: a warm-up row with a NULL feature, and a last day without labels."""
    url = make_database()
    columns = ", ".join(f"{name} double precision" for name in FEATURES)
    features = [
        # (symbol, trade_date, feature value or None for vol_20d)
        ("BBB", D2, 0.2),
        ("AAA", D2, 0.1),
        ("AAA", D1, None),  # vol_20d unknown: the window is not full yet
        ("BBB", D1, 0.3),
        ("AAA", D3, 0.4),
        ("BBB", D3, 0.5),
    ]
    labels = [("AAA", D1, 0.01), ("AAA", D2, -0.02), ("BBB", D1, 0.03), ("BBB", D2, 0.04)]
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"create table marts.features_daily (symbol text, trade_date date, {columns})")
        cur.execute(
            "create table marts.labels_daily (symbol text, trade_date date, fwd_ret_5d numeric)"
        )
        for symbol, day, value in features:
            values = [value if name == "vol_20d" else 1.0 for name in FEATURES]
            cur.execute(
                "insert into marts.features_daily values (%s, %s" + ", %s" * len(FEATURES) + ")",
                (symbol, day, *values),
            )
        cur.executemany("insert into marts.labels_daily values (%s, %s, %s)", labels)
    conn.close()
    return url


def test_load_frame_joins_labels_and_drops_incomplete_rows(marts_url: str) -> None:
    frame = load_frame(marts_url)

    assert list(frame.columns) == ["symbol", "trade_date", *FEATURES, "fwd_ret_5d"]
    # AAA on D1 has no vol_20d; D3 has no labels yet; the rest comes sorted by date, then symbol.
    assert list(zip(frame["trade_date"], frame["symbol"], strict=True)) == [
        (D1, "BBB"),
        (D2, "AAA"),
        (D2, "BBB"),
    ]
    assert frame["fwd_ret_5d"].dtype == np.float64  # numeric comes back as float, not Decimal
    assert frame["fwd_ret_5d"].tolist() == [0.03, -0.02, 0.04]
    assert frame["vol_20d"].dtype == np.float32  # features are read as `real`
    assert frame["vol_20d"].tolist() == np.float32([0.3, 0.1, 0.2]).tolist()
    assert frame.index.tolist() == [0, 1, 2]


def test_load_frame_without_labels_keeps_the_latest_day(marts_url: str) -> None:
    frame = load_frame(marts_url, with_label=False)

    assert "fwd_ret_5d" not in frame.columns
    assert frame["trade_date"].max() == D3
    assert len(frame) == 5  # only the row with an unknown feature is dropped


def test_read_sql_passes_arguments_and_converts_numerics(marts_url: str) -> None:
    frame = read_sql(
        marts_url,
        "select symbol, trade_date, fwd_ret_5d from marts.labels_daily"
        " where symbol = %s order by trade_date",
        ("BBB",),
    )

    assert frame["symbol"].tolist() == ["BBB", "BBB"]
    assert frame["trade_date"].tolist() == [D1, D2]
    assert frame["fwd_ret_5d"].dtype == np.float64


def test_features_are_discovered_from_the_table_minus_keys_and_bookkeeping(
    marts_url: str,
) -> None:
    with psycopg2.connect(marts_url) as conn, conn.cursor() as cur:
        cur.execute(
            "alter table marts.features_daily add column adj_close double precision,"
            " add column history_days bigint, add column sector text,"
            " add column mom_60d double precision, add column close_price double precision"
        )
    conn.close()

    # close_price is numeric but dbt's YAML marks it `meta: {feature: false}`.
    assert discover_features(marts_url) == [*FEATURES, "mom_60d"]


def test_label_catalog_and_universe_are_used_when_they_exist(marts_url: str) -> None:
    with psycopg2.connect(marts_url) as conn, conn.cursor() as cur:
        cur.execute(
            "create table marts.label_catalog (label text, horizon_days int, description text)"
        )
        cur.execute("insert into marts.label_catalog values ('fwd_ret_5d', 7, 'seven days')")
        cur.execute(
            "create table marts.universe_daily"
            " (symbol text, trade_date date, in_universe boolean, reason text)"
        )
        cur.execute(
            "insert into marts.universe_daily values (%s, %s, true, null), (%s, %s, false, 'x')",
            ("AAA", D2, "BBB", D2),
        )
    conn.close()

    assert label_horizon("fwd_ret_5d", marts_url) == 7
    assert label_horizon("fwd_ret_1d", marts_url) == 1  # not in the catalog: from the name
    frame, _ = load_panel(marts_url, FEATURES, ["fwd_ret_5d"])
    flagged = frame.set_index(["symbol", "trade_date"])["in_universe"]
    assert flagged[("AAA", D2)] and not flagged[("BBB", D2)] and not flagged[("AAA", D1)]
    assert list(
        zip(*[load_frame(marts_url)[c] for c in ("symbol", "trade_date")], strict=True)
    ) == [("AAA", D2)]


# --- processors: statistics of the training rows only ---------------------------------------


# --- the columnar panel reader ----------------------------------------------------------


def _random_marts(
    url: str, n_symbols: int, n_days: int, n_features: int, seed: int = 0
) -> list[str]:
    """marts.features_daily/labels_daily/universe_daily of random values (NULLs included),
    inserted in a shuffled order; returns the feature names."""
    rng = np.random.default_rng(seed)
    names = [f"f_{j}" for j in range(n_features)]
    symbols = [f"S{i:03d}" for i in range(n_symbols)] + ["BRK.B", "brk_a"]
    days = [date(2020, 1, 1) + timedelta(days=d) for d in range(n_days)]
    keys = [(s, d) for s in symbols for d in days]
    order = rng.permutation(len(keys))
    values = rng.normal(size=(len(keys), n_features))
    values[rng.random(values.shape) < 0.05] = np.nan
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cols = ", ".join(f"{n} double precision" for n in names)
        cur.execute(f"create table marts.features_daily (symbol text, trade_date date, {cols})")
        cur.execute("create table marts.labels_daily (symbol text, trade_date date,"
                    " fwd_ret_5d numeric, fwd_ret_1d double precision)")  # fmt: skip
        cur.execute("create table marts.universe_daily (symbol text, trade_date date,"
                    " in_universe boolean)")  # fmt: skip
        buffer = io.StringIO()
        for i in order:
            row = ["" if np.isnan(v) else repr(float(v)) for v in values[i]]
            buffer.write(",".join([keys[i][0], keys[i][1].isoformat(), *row]) + "\n")
        buffer.seek(0)
        cur.copy_expert("copy marts.features_daily from stdin (format csv)", buffer)
        labelled = [
            (s, d, float(rng.normal()), float(rng.normal())) for s, d in keys[: len(keys) // 2]
        ]
        cur.executemany("insert into marts.labels_daily values (%s, %s, %s, %s)", labelled)
        flags = [(s, d, bool(rng.random() < 0.8)) for s, d in keys[::3]]
        cur.executemany("insert into marts.universe_daily values (%s, %s, %s)", flags)
    conn.close()
    return names


def _row_reader(url: str, features: list[str]) -> pd.DataFrame:
    """The reader training used before: psycopg2 rows, then pandas, sorted in Python."""
    cols = ", ".join(f"f.{c}" for c in features)
    frame = read_sql(
        url,
        f"select f.symbol, f.trade_date, {cols}, l.fwd_ret_5d, l.fwd_ret_1d,"
        " coalesce(u.in_universe, false) as in_universe from marts.features_daily f"
        " left join marts.labels_daily l using (symbol, trade_date)"
        " left join marts.universe_daily u using (symbol, trade_date)",
    )
    return frame.sort_values(["symbol", "trade_date"]).reset_index(drop=True)


def test_the_columnar_reader_equals_the_row_reader_value_for_value(
    make_database: Callable[[], str],
) -> None:
    url = make_database()
    names = _random_marts(url, n_symbols=7, n_days=40, n_features=6)

    keys, matrix, features = read_panel(url, None, ["fwd_ret_5d", "fwd_ret_1d"])
    old = _row_reader(url, names)

    assert features == names
    assert matrix.dtype == np.float32 and matrix.flags.c_contiguous
    assert matrix.shape == (len(old), len(names))
    assert keys["symbol"].tolist() == old["symbol"].tolist()  # sorted in Python's order
    assert keys["trade_date"].tolist() == old["trade_date"].tolist()
    # float32 features: the old float64 values at float32 precision, NULLs as NaN
    np.testing.assert_array_equal(matrix, old[names].to_numpy(np.float64).astype(np.float32))
    assert np.isnan(matrix).sum() == old[names].isna().to_numpy().sum() > 0
    for label in ("fwd_ret_5d", "fwd_ret_1d"):
        assert keys[label].dtype == np.float64
        np.testing.assert_array_equal(keys[label].to_numpy(), old[label].to_numpy(np.float64))
    assert keys["in_universe"].tolist() == old["in_universe"].astype(bool).tolist()
    # a date range reads only its rows
    part, part_matrix, _ = read_panel(url, names[:2], ["fwd_ret_5d"], date(2020, 1, 10),
                                      date(2020, 1, 19))  # fmt: skip
    assert part_matrix.shape == (9 * 10, 2)
    assert set(part["trade_date"]) == {date(2020, 1, 10) + timedelta(days=d) for d in range(10)}


def test_the_columnar_reader_allocates_about_its_matrix(make_database: Callable[[], str]) -> None:
    """Bytes allocated (tracemalloc sees numpy and Python objects, not time): the columnar
    reader stays near its float32 matrix; the row reader it replaced is measured alongside."""
    url = make_database()
    names = _random_marts(url, n_symbols=40, n_days=500, n_features=40, seed=1)

    tracemalloc.start()
    try:
        keys, matrix, _ = read_panel(url, names, ["fwd_ret_5d"])
        _, columnar_peak = tracemalloc.get_traced_memory()
        del keys, matrix
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        _row_reader(url, names)
        _, row_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    rows = 42 * 500
    matrix_bytes = rows * len(names) * 4
    # the matrix, plus the keys (a pointer per symbol and a date object per row) and labels
    assert columnar_peak < matrix_bytes + rows * 100, (columnar_peak, matrix_bytes)
    assert row_peak - base > 5 * columnar_peak, (row_peak, columnar_peak)


def test_a_hostile_column_name_is_read_as_a_name_never_run_as_sql(marts_url: str) -> None:
    """Feature names come from the database's catalogue: one crafted to close the quote and
    append a statement is quoted as an identifier (issue 15)."""
    hostile = 'x"::real; drop table marts.labels_daily; --'  # < 64 bytes: not truncated
    with psycopg2.connect(marts_url) as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("alter table marts.features_daily add column {} double precision").format(
                sql.Identifier(hostile)
            )
        )
    conn.close()
    assert hostile in discover_features(marts_url)

    keys, matrix, features = read_panel(marts_url, discover_features(marts_url))

    assert features[-1] == hostile and len(keys) == 6
    assert np.isnan(matrix[:, -1]).all()  # read as the (empty) column it is
    with psycopg2.connect(marts_url) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from marts.labels_daily")
        assert cur.fetchone()[0] == 4  # still there
    conn.close()
