"""The universe file: parsed strictly (every bad line named), planned into provider calls by
first day, stored in raw.universe, and compared with raw.prices by the freshness view."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ingest.loader import ingest
from ingest.universe import (
    Member,
    UniverseError,
    fetch_plan,
    read_universe,
    stale_symbols,
    store_universe,
)
from tests.helpers import query


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "universe.csv"
    path.write_text(text)
    return path


def test_a_universe_file_gives_symbols_start_dates_and_active_flags(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "symbol,start,active\naapl,,\nMETA,2012-05-18,yes\n\nENRN,1990-01-02,false\nBRK.B,,1\n",
    )
    assert read_universe(path) == [
        Member("AAPL"),
        Member("META", date(2012, 5, 18)),
        Member("ENRN", date(1990, 1, 2), active=False),
        Member("BRK.B"),
    ]
    # A file of symbols alone is a universe too.
    assert read_universe(_write(tmp_path, "Symbol\nIBM\n")) == [Member("IBM")]


def test_a_bad_universe_file_is_refused_whole_naming_every_bad_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "symbol,start,active\nAAPL,,\nAAPL,,\nMSFT,2012-13-01,\nIBM,,maybe\n'; drop,,\nX,,,extra\n",
    )
    with pytest.raises(UniverseError) as err:
        read_universe(path)
    message = str(err.value)
    for expected in (
        "line 3: AAPL already listed on line 2",
        "line 4: start '2012-13-01' is not a date",
        "line 5: active 'maybe' is not true/false",
        'line 6: "\'; DROP" is not a ticker symbol',
        "line 7: more fields than the header's 3",
    ):
        assert expected in message, message
    with pytest.raises(UniverseError, match="no 'symbol' column"):
        read_universe(_write(tmp_path, "ticker\nAAPL\n"))
    with pytest.raises(UniverseError, match=r"unknown column\(s\) \['weight'\]"):
        read_universe(_write(tmp_path, "symbol,weight\nAAPL,1\n"))
    with pytest.raises(UniverseError, match="lists no symbol"):
        read_universe(_write(tmp_path, "symbol\n"))
    with pytest.raises(UniverseError, match="No such file"):
        read_universe(tmp_path / "missing.csv")


def test_the_fetch_plan_groups_active_symbols_by_their_first_day() -> None:
    members = [
        Member("AAA"),
        Member("BBB", date(2024, 1, 5)),
        Member("CCC", date(2023, 6, 1)),
        Member("DDD", date(2024, 1, 5)),
        Member("OLD", active=False),
    ]
    # A run from Jan 3: symbols that start earlier start with the run; later ones on their day.
    assert fetch_plan(members, date(2024, 1, 3)) == [
        (["AAA", "CCC"], date(2024, 1, 3)),
        (["BBB", "DDD"], date(2024, 1, 5)),
    ]
    # Without a run start (everything the provider has), each symbol from its own start.
    assert fetch_plan(members, None) == [
        (["AAA"], None),
        (["CCC"], date(2023, 6, 1)),
        (["BBB", "DDD"], date(2024, 1, 5)),
    ]


def test_symbols_missing_the_markets_latest_bar_are_reported_stale(make_database) -> None:
    url = make_database()
    ingest(url, "sample", ["AAPL", "MSFT"], date(2012, 1, 3), date(2012, 1, 31))
    ingest(url, "sample", ["IBM"], date(2012, 1, 3), date(2012, 1, 20))
    members = [Member("AAPL"), Member("MSFT"), Member("IBM"), Member("NOPE"),
               Member("GOOG", active=False)]  # fmt: skip
    store_universe(url, members, source="test")
    stale = stale_symbols(url)
    assert [(s.symbol, s.last_trade_date) for s in stale] == [
        ("IBM", date(2012, 1, 20)),
        ("NOPE", None),
    ]
    assert {s.market_date for s in stale} == {date(2012, 1, 31)}
    assert query(
        url, "select symbol, calendar_days_behind from monitoring.symbol_freshness order by 1"
    ) == [("AAPL", 0), ("IBM", 11), ("MSFT", 0), ("NOPE", None)]
    # Storing again replaces the universe, it does not add to it.
    store_universe(url, [Member("AAPL")], source="test")
    assert query(url, "select symbol from raw.universe") == [("AAPL",)]
    assert stale_symbols(url) == []
