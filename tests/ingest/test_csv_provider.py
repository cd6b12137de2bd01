"""The CSV provider: real files in tmp_path, loaded for real into a throw-away database."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import pytest

import ingest.providers.csv as csv_provider
from ingest.loader import BatchResult, load_prices
from ingest.providers import FetchFailure, get_provider
from ingest.providers.csv import CsvProvider
from ingest.schema import PRICE_COLUMNS
from tests.helpers import query as _rows

TODAY = date(2024, 6, 28)
UNPARSEABLE = "unparseable trade_date (expected YYYY-MM-DD)"
PER_SYMBOL_HEADER = "Date,Open,High,Low,Close,Volume\n"


def _write(path: Path, text: str, bom: bool = False) -> Path:
    data = ("\ufeff" if bom else "") + text
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8", newline="") as out:
            out.write(data)
    else:
        path.write_text(data, encoding="utf-8", newline="")
    return path


def _prices(url: str) -> list[tuple]:
    return _rows(
        url,
        "select symbol, trade_date::text, open, high, low, close, adj_close, volume "
        "from raw.prices order by symbol, trade_date",
    )


def _rejected(url: str) -> list[tuple]:
    """(trade_date as received, close as received, reason), sorted."""
    return _rows(
        url,
        "select coalesce(row_data->>'trade_date', ''), row_data->>'close', reason "
        "from raw.rejected_prices order by 1, 2, 3",
    )


def _load(url: str, provider: CsvProvider, **fetch: object) -> BatchResult:
    return load_prices(url, provider.fetch(**fetch), "csv", today=TODAY)  # type: ignore[arg-type]


def test_long_format_with_aliased_headers_in_any_row_order(make_database, tmp_path):
    path = _write(
        tmp_path / "prices.csv",
        "Date,Ticker,Open,High,Low,Close,Adj Close,Volume,Open Interest\n"
        "2024-01-03, msft ,370.0,373.0,369.0,372.0,371.5,2100,17\n"
        "2024-01-02,AAPL,187.15,188.44,183.89,185.64,184.9,82488700,5\n"
        "2024-01-03,AAPL,184.22,185.88,183.43,184.25,183.5, 58414500 ,6\n"
        "2024-01-02,MSFT,373.86,375.9,366.77,370.87,369.1,25258600,9\n",
    )
    provider = get_provider("csv", path=str(path))
    url = make_database()

    frames = list(provider.fetch())
    result = load_prices(url, frames, "csv", today=TODAY)

    assert [list(f.columns) for f in frames] == [PRICE_COLUMNS]
    assert frames[0]["symbol"].tolist() == ["msft", "AAPL", "AAPL", "MSFT"]
    assert frames[0]["volume"].tolist() == ["2100", "82488700", "58414500", "25258600"]
    assert (result.rows_inserted, result.rows_rejected) == (4, 0)
    assert _prices(url) == [
        ("AAPL", "2024-01-02", 187.15, 188.44, 183.89, 185.64, 184.9, 82488700),
        ("AAPL", "2024-01-03", 184.22, 185.88, 183.43, 184.25, 183.5, 58414500),
        ("MSFT", "2024-01-02", 373.86, 375.9, 366.77, 370.87, 369.1, 25258600),
        ("MSFT", "2024-01-03", 370.0, 373.0, 369.0, 372.0, 371.5, 2100),
    ]
    assert provider.available_symbols() == ["AAPL", "MSFT"]


def test_per_symbol_files_gzip_semicolons_and_bom(make_database, tmp_path):
    _write(
        tmp_path / "AAPL_daily.csv.gz",
        "timestamp;o;h;l;c;adjusted_close;vol\n"
        "2024-01-03;184.22;185.88;183.43;184.25;183.5;58414500\n"
        "2024-01-02;187.15;188.44;183.89;185.64;184.9;82488700\n",
    )
    _write(
        tmp_path / "MSFT_daily.csv",
        "DATE,OPEN,HIGH,LOW,CLOSE,ADJ_CLOSE,VOLUME\n"
        "2024-01-02,373.86,375.9,366.77,370.87,369.1,25258600\n",
        bom=True,
    )
    _write(tmp_path / "notes.txt", "not a price file\n")
    (tmp_path / "._MSFT_daily.csv").write_bytes(b"\x00\x05\x16\x07\x00\x02")  # macOS metadata
    provider = CsvProvider(tmp_path, pattern="{symbol}_daily.csv")
    url = make_database()

    result = _load(url, provider)

    assert result.failures == []
    assert _prices(url) == [
        ("AAPL", "2024-01-02", 187.15, 188.44, 183.89, 185.64, 184.9, 82488700),
        ("AAPL", "2024-01-03", 184.22, 185.88, 183.43, 184.25, 183.5, 58414500),
        ("MSFT", "2024-01-02", 373.86, 375.9, 366.77, 370.87, 369.1, 25258600),
    ]
    assert provider.available_symbols() == ["AAPL", "MSFT"]


def test_single_file_takes_symbol_option_and_uses_close_as_adj_close(make_database, tmp_path):
    path = _write(tmp_path / "export.csv", PER_SYMBOL_HEADER + "2024-01-02,10,11,9,10.5,1000\n")
    url = make_database()

    result = _load(url, CsvProvider(path, symbol="spy"))

    assert result.rows_inserted == 1
    assert _prices(url) == [("SPY", "2024-01-02", 10.0, 11.0, 9.0, 10.5, 10.5, 1000)]


def test_dividends_and_splits_are_kept_and_unknown_columns_ignored(make_database, tmp_path):
    # yfinance's own CSV shape: 0 in Dividends / Stock Splits means "none that day".
    _write(
        tmp_path / "KO.csv",
        "Date,Open,High,Low,Close,Adj Close,Volume,Dividends,Stock Splits,Capital Gains\n"
        "2024-03-14 00:00:00-04:00,60,61,59,60.5,59.8,1000,0.0,0.0,0.0\n"
        "2024-03-15 00:00:00-04:00,60,61,59,60.5,59.8,1000,0.485,0.0,0.0\n"
        "2024-03-18 00:00:00-04:00,30,31,29,30.5,30.1,2000,0.0,2.0,0.0\n",
    )
    provider = CsvProvider(tmp_path)
    url = make_database()

    frames = list(provider.fetch())
    result = load_prices(url, frames, "csv", today=TODAY)

    assert list(frames[0].columns) == [*PRICE_COLUMNS, "dividend", "split_factor"]
    assert (result.rows_inserted, result.rows_rejected) == (3, 0)
    assert _rows(
        url, "select trade_date::text, dividend, split_factor from raw.prices order by 1"
    ) == [
        ("2024-03-14", None, None),
        ("2024-03-15", 0.485, None),
        ("2024-03-18", None, 2.0),
    ]


def test_header_only_file_loads_nothing_and_the_batch_succeeds(make_database, tmp_path):
    path = _write(tmp_path / "AAPL.csv", PER_SYMBOL_HEADER)
    url = make_database()

    result = _load(url, CsvProvider(path))

    assert (result.rows_in, result.rows_loaded, result.failures) == (0, 0, [])
    assert _rows(url, "select status, rows_in from raw.ingest_batches") == [("succeeded", 0)]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.csv", "", "empty.csv: empty file (no header line)"),
        ("blank.csv", "\ufeff\n\n", "blank.csv: empty file (no header line)"),
        (
            "prices.csv",
            "Date,Symbol,Open,High,Low,Volume\n2024-01-02,AAA,1,2,0.5,10\n",
            "prices.csv: no close column (looked for close, c, close price, last); "
            "columns found: Date, Symbol, Open, High, Low, Volume",
        ),
        (
            "nodate.csv",
            "Symbol,Open,High,Low,Close,Volume\n",
            "nodate.csv: no trade_date column (looked for date, trade_date, tradedate, "
            "timestamp, datetime, day, time); columns found: Symbol, Open, High, Low, Close, Volume",
        ),
        (
            "AAPL.txt",
            PER_SYMBOL_HEADER,
            "AAPL.txt: no symbol column (looked for symbol, ticker, code, ric) and the file name "
            "does not match the pattern '{symbol}.csv' (for a single file, pass symbol=); "
            "columns found: Date, Open, High, Low, Close, Volume",
        ),
        (
            "AAPL.csv",
            PER_SYMBOL_HEADER + "2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1,2,0.5,1.5,1,000\n",
            "AAPL.csv: line 3 has 7 fields, the header has 6; is a value with a ',' unquoted?",
        ),
        (
            "AAPL.csv",
            PER_SYMBOL_HEADER + "2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1,2,0.5,1.5,1,000,5\n",
            "AAPL.csv: line 3 has 8 fields, the header has 6; is a value with a ',' unquoted?",
        ),
        (
            "AAPL.csv",
            PER_SYMBOL_HEADER + "2024-01-02,1,2,0.5,1.5,10,,7\n",
            "AAPL.csv: line 2 has 8 fields, the header has 6; is a value with a ',' unquoted?",
        ),
    ],
)
def test_a_file_it_cannot_read_is_one_clear_error(tmp_path, name, text, message):
    path = _write(tmp_path / name, text)

    with pytest.raises(ValueError) as raised:
        list(CsvProvider(path).fetch())

    assert str(raised.value) == message


def test_bad_values_are_rejected_with_their_reason(make_database, tmp_path):
    path = _write(
        tmp_path / "ZZZ.csv",
        PER_SYMBOL_HEADER
        + "2024-01-02,10,11,9,10.5,1000\n"
        + "2024-01-03,10,11,9,abc,1000\n"
        + "2024-01-04,-10,11,9,10.5,1000\n"
        + "2024-01-05,10,11,9,0,1000\n"
        + "2024-01-08,10,9,11,10,1000\n"
        + "2024-01-09,10,11,9,,1000\n"
        + "2024-01-10,10,11,9,NaN,1000\n"
        + "2024-01-11,10,11,9,10.5,1000\n"
        + "2024-01-11,10,11,9,10.5,1000\n"
        + "2024-07-01,10,11,9,10.5,1000\n"
        + "2024-01-12,10,11,9,10.5,0\n",
    )
    url = make_database()

    result = _load(url, CsvProvider(path))

    assert (result.rows_in, result.rows_inserted, result.rows_rejected) == (11, 2, 9)
    assert [row[1] for row in _prices(url)] == ["2024-01-02", "2024-01-12"]
    assert _rejected(url) == [
        ("2024-01-03", "abc", "missing or non-numeric close"),
        ("2024-01-04", "10.5", "open must be > 0"),
        ("2024-01-05", "0", "close must be > 0"),
        ("2024-01-08", "10", "inconsistent OHLC: need low <= open, close <= high"),
        ("2024-01-09", "", "missing or non-numeric close"),
        ("2024-01-10", "NaN", "missing or non-numeric close"),
        ("2024-01-11", "10.5", "duplicate (symbol, trade_date) in batch"),
        ("2024-01-11", "10.5", "duplicate (symbol, trade_date) in batch"),
        ("2024-07-01", "10.5", "trade_date in the future"),
    ]


def test_only_year_first_dates_load_and_others_are_rejected_not_guessed(make_database, tmp_path):
    dates = [
        "2024-01-02",
        "01/03/2024",  # January 3rd or March 1st: never guessed
        "2024/01/04",
        "20240105",
        "13/01/2024",  # unambiguous alone, but day-first rows would load only when day > 12
        "2024-01-09 16:00:00",
        "Jan 10 2024",
        "not a date",
        "",
    ]
    path = _write(
        tmp_path / "AAA.csv",
        PER_SYMBOL_HEADER + "".join(f"{d},10,11,9,10.5,1000\n" for d in dates),
    )
    url = make_database()

    result = _load(url, CsvProvider(path))

    assert result.rows_inserted == 4
    assert [row[1] for row in _prices(url)] == [
        "2024-01-02",
        "2024-01-04",
        "2024-01-05",
        "2024-01-09",
    ]
    assert _rejected(url) == [
        ("", "10.5", UNPARSEABLE),
        ("01/03/2024", "10.5", UNPARSEABLE),
        ("13/01/2024", "10.5", UNPARSEABLE),
        ("Jan 10 2024", "10.5", UNPARSEABLE),
        ("not a date", "10.5", UNPARSEABLE),
    ]


def test_filters_drop_only_rows_whose_date_parses_outside_the_range(make_database, tmp_path):
    path = _write(
        tmp_path / "long.csv",
        "symbol;date;open;high;low;close;volume\n"
        + "".join(
            f"{s};{d};10;11;9;10.5;1000\n"
            for s in ("AAPL", "MSFT")
            for d in ("2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "01/04/2024")
        ),
    )
    url = make_database()

    result = _load(
        url, CsvProvider(path), symbols=["aapl"], start=date(2024, 1, 3), end=date(2024, 1, 4)
    )

    assert result.rows_in == 3
    assert [row[:2] for row in _prices(url)] == [("AAPL", "2024-01-03"), ("AAPL", "2024-01-04")]
    assert _rows(url, "select symbol, row_data->>'trade_date' from raw.rejected_prices") == [
        ("AAPL", "01/04/2024")
    ]


def test_symbols_filter_picks_per_symbol_files(make_database, tmp_path):
    for symbol in ("AAA", "BBB"):
        _write(tmp_path / f"{symbol}.csv", PER_SYMBOL_HEADER + "2024-01-02,10,11,9,10.5,1000\n")
    url = make_database()

    _load(url, CsvProvider(tmp_path), symbols=[" bbb"])

    assert [row[0] for row in _prices(url)] == ["BBB"]


def test_a_bad_file_in_a_folder_fails_alone(make_database, tmp_path):
    _write(tmp_path / "AAA.csv", PER_SYMBOL_HEADER + "2024-01-02,10,11,9,10.5,1000\n")
    _write(tmp_path / "BAD.csv", "Date,Open,High,Low,Volume\n2024-01-02,10,11,9,1000\n")
    _write(tmp_path / "CCC.csv.gz", PER_SYMBOL_HEADER + "2024-01-02,20,21,19,20.5,500\n")
    url = make_database()

    items = list(CsvProvider(tmp_path).fetch())
    result = load_prices(url, items, "csv", today=TODAY)

    error = (
        "BAD.csv: no close column (looked for close, c, close price, last); "
        "columns found: Date, Open, High, Low, Volume"
    )
    assert [item for item in items if isinstance(item, FetchFailure)] == [
        FetchFailure(unit="BAD.csv", error=error)
    ]
    # the two good files travel in one frame that names both
    assert [item.attrs["units"] for item in items if not isinstance(item, FetchFailure)] == [
        ["AAA.csv", "CCC.csv.gz"]
    ]
    assert result.failures == [{"unit": "BAD.csv", "error": error}]
    assert [row[0] for row in _prices(url)] == ["AAA", "CCC"]
    assert _rows(url, "select status, units_failed from raw.ingest_batches") == [("succeeded", 1)]


def test_frames_hold_at_most_chunk_rows(make_database, tmp_path, monkeypatch):
    monkeypatch.setattr(csv_provider, "CHUNK_ROWS", 2)
    path = _write(
        tmp_path / "AAA.csv",
        PER_SYMBOL_HEADER + "".join(f"2024-01-0{d},10,11,9,10.5,1000\n" for d in range(2, 7)),
    )
    url = make_database()

    frames = list(CsvProvider(path).fetch())
    result = load_prices(url, frames, "csv", today=TODAY)

    assert [len(f) for f in frames] == [2, 2, 1]
    assert result.rows_inserted == 5


def test_available_symbols_reads_names_and_symbol_columns(tmp_path):
    _write(tmp_path / "IBM.csv", PER_SYMBOL_HEADER)
    _write(
        tmp_path / "long.csv",
        "Code,Date,Open,High,Low,Close,Volume\n"
        " aapl ,2024-01-02,1,2,0.5,1.5,10\nMSFT,2024-01-02,1,2,0.5,1.5,10\n"
        "AAPL,2024-01-03,1,2,0.5,1.5,10\n,2024-01-03,1,2,0.5,1.5,10\n",
    )
    _write(tmp_path / "broken.csv", "")

    assert CsvProvider(tmp_path).available_symbols() == ["AAPL", "IBM", "MSFT"]


def test_missing_path_and_folder_without_csv_files(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        CsvProvider(missing)

    _write(tmp_path / "readme.txt", "no prices here\n")
    with pytest.raises(FileNotFoundError, match=f"no .csv or .csv.gz files in {tmp_path}"):
        list(CsvProvider(tmp_path).fetch())


def test_contradictory_options_are_refused(tmp_path):
    long_file = _write(tmp_path / "long.csv", "Ticker,Date,Open,High,Low,Close,Volume\n")

    with pytest.raises(ValueError, match="symbol= names the symbol of a single file"):
        CsvProvider(tmp_path, symbol="AAPL")
    with pytest.raises(ValueError, match=r"pattern must contain \{symbol\} once"):
        CsvProvider(tmp_path, pattern="prices.csv")
    with pytest.raises(ValueError, match="pattern must end in .csv or .csv.gz"):
        CsvProvider(tmp_path, pattern="{symbol}.txt")
    with pytest.raises(
        ValueError, match=r"long.csv: symbol='AAPL' is for a file without a symbol column"
    ):
        list(CsvProvider(long_file, symbol="AAPL").fetch())
