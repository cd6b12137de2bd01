"""Hostile inputs (issue 15, items 2-4): control characters, odd symbols, symlinks, paths
outside the data roots, oversized headers and lines, decompression bombs, NUL in errors.

Each file is written to tmp_path and loaded for real; none of its content may leak into an
error message, the batch log or stdout, and one bad file never sinks the others.
"""

from __future__ import annotations

import gzip
import os
from datetime import date
from pathlib import Path

import pytest

from ingest.loader import load_prices
from ingest.providers import FetchFailure
from ingest.providers.csv import CsvProvider
from ingest.validate import split_valid
from tests.helpers import query as _rows

TODAY = date(2024, 6, 28)
HEADER = "Date,Open,High,Low,Close,Volume\n"
ROW = "2024-01-02,10,11,9,10.5,1000\n"
SECRET = "root:$6$s3cr3tHASH$abcdefghijklmnop:19000:0:99999:7:::"


def _write(path: Path, text: str | bytes) -> Path:
    data = text.encode() if isinstance(text, str) else text
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as out:
            out.write(data)
    else:
        path.write_bytes(data)
    return path


def _closes(url: str) -> list[tuple]:
    return _rows(url, "select symbol, trade_date::text, close from raw.prices order by 1, 2")


def _everything_recorded(url: str) -> str:
    """Every text the batch left in the database: batch log, failures, rejects."""
    rows = _rows(
        url,
        "select coalesce(error, '') || failures::text from raw.ingest_batches "
        "union all select coalesce(symbol, '') || row_data::text || reason "
        "from raw.rejected_prices",
    )
    return "\n".join(r[0] for r in rows)


# --- item 2: control characters and symbols --------------------------------------------


def test_a_nul_byte_in_a_field_quarantines_the_row_instead_of_cutting_it(make_database, tmp_path):
    _write(
        tmp_path / "prices.csv",
        "Symbol,Date,Open,High,Low,Close,Volume\n"
        "AAA,2024-01-02,10,11,9,10.5,1000\n"
        "AAA\x00-FAKE,2024-01-02,1,1,1,1,1\n"
        "BBB,2024-01-02,20,21,19,20.\x075,500\n",
    )
    url = make_database()

    result = load_prices(url, CsvProvider(tmp_path).fetch(), "csv", today=TODAY)

    assert _closes(url) == [("AAA", "2024-01-02", 10.5)]
    assert result.rejected_by_reason == {
        "control character in symbol": 1,
        "control character in close": 1,
    }
    # kept as received, with the NUL spelled out (PostgreSQL text cannot hold it)
    assert _rows(url, "select symbol, row_data->>'symbol' from raw.rejected_prices order by 1") == [
        ("AAA\\x00-FAKE", "AAA\\x00-FAKE"),
        ("BBB", "BBB"),
    ]


def test_symbols_outside_the_allowed_alphabet_or_length_are_quarantined():
    import pandas as pd

    good = ["BRK.B", "brk-b", "^GSPC", "EURUSD=X", "RDS/A", "M&M.NS", "8306.T", "X_1", "A" * 32]
    bad = ["A" * 33, "AAPL US", "AA;PL", "ÄPPLE", "'AAA'", "A\u200bB"]
    frame = pd.DataFrame(
        {
            "symbol": good + bad,
            "trade_date": [f"2024-01-{d:02d}" for d in range(2, 2 + len(good) + len(bad))],
            **{c: "10" for c in ("open", "high", "low", "close", "adj_close")},
            "volume": "1",
        }
    )

    valid, rejected = split_valid(frame, TODAY)

    assert valid["symbol"].tolist() == [s.upper() for s in good]
    assert rejected["symbol"].tolist() == bad
    assert set(rejected["reason"]) == {
        "invalid symbol (1 to 32 of A-Z 0-9 . - ^ = / _ &)",
    }


# --- item 3: only regular files inside the folder, paths inside the data roots ----------


def test_symlinks_leaving_the_folder_and_special_files_are_not_read(make_database, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = _write(outside / "shadow", SECRET + "\n" + ROW)
    folder = tmp_path / "data"
    folder.mkdir()
    _write(folder / "AAA.csv", HEADER + ROW)
    (folder / "LEAK.csv").symlink_to(secret)
    (folder / "LEAK2.csv.gz").symlink_to("../outside/shadow")
    (folder / "INSIDE.csv").symlink_to(folder / "AAA.csv")  # stays in the folder: fine
    os.mkfifo(folder / "PIPE.csv")  # reading it would block forever
    url = make_database()

    items = list(CsvProvider(folder).fetch())
    result = load_prices(url, items, "csv", today=TODAY)

    failures = {f.unit: f.error for f in items if isinstance(f, FetchFailure)}
    assert failures == {
        "LEAK.csv": "LEAK.csv: a symbolic link to a file outside the folder; not read",
        "LEAK2.csv.gz": "LEAK2.csv.gz: a symbolic link to a file outside the folder; not read",
        "PIPE.csv": "PIPE.csv: not a regular file; not read",
    }
    assert _closes(url) == [("AAA", "2024-01-02", 10.5), ("INSIDE", "2024-01-02", 10.5)]
    assert "s3cr3t" not in _everything_recorded(url) + result.summary()


def test_a_path_outside_the_allowed_roots_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    _write(root / "AAA.csv", HEADER + ROW)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _write(elsewhere / "BBB.csv", HEADER + ROW)
    (root / "sneaky").symlink_to(elsewhere)

    assert len(list(CsvProvider(root / "AAA.csv", allowed_roots=[root]).fetch())) == 1
    for path in (elsewhere, elsewhere / "BBB.csv", root / "sneaky", root / ".." / "elsewhere"):
        with pytest.raises(PermissionError, match="outside the allowed data roots"):
            CsvProvider(path, allowed_roots=[root])


def test_error_messages_never_echo_file_contents(tmp_path):
    _write(tmp_path / "AAA.csv", SECRET + "\n" + ROW)
    _write(tmp_path / "BBB.csv", HEADER + "2024-01-02,10,11,9,10.5,1000," + SECRET + "\n")
    _write(tmp_path / "CCC.csv", "\x00\x01" + SECRET + "\n")
    _write(tmp_path / "DDD.csv", b"Date,Open,High,Low,Close,Volume\n\xff\xfe" + SECRET.encode())

    failures = [f for f in CsvProvider(tmp_path).fetch() if isinstance(f, FetchFailure)]

    assert [f.unit for f in failures] == ["AAA.csv", "BBB.csv", "CCC.csv", "DDD.csv"]
    for failure in failures:
        assert "s3cr3t" not in failure.error and "$6$" not in failure.error
        assert failure.error.isprintable() and failure.error.startswith(f"{failure.unit}: ")


# --- item 4: one bad file fails alone; bounded reads; NUL in an error -------------------


def _hostile_folder(folder: Path) -> None:
    _write(folder / "AAA.csv", HEADER + ROW)
    _write(
        folder / "long.csv",
        "Symbol,Date,Open,High,Low,Close,Volume\n"
        + "X" * 3000
        + ",2024-01-02,10,11,9,10.5,1000\nCCC,2024-01-02,30,31,29,30.5,1000\n",
    )
    _write(folder / "WIDE.csv", "Date," + "x" * 140_000 + ",Open,High,Low,Close,Volume\n" + ROW)
    _write(folder / "NUL.csv", "Date,Op\x00en,High,Low,Close,Volume\n" + ROW)
    _write(folder / "LONGLINE.csv", HEADER + "2024-01-02,10,11,9,10.5," + "9" * 3_000_000 + "\n")
    _write(folder / "BLANK.csv.gz", b"\n" * 50_000_000)  # 50 MB of blank lines, 50 KB on disk


def test_one_hostile_file_fails_alone_and_the_others_load(make_database, tmp_path):
    _hostile_folder(tmp_path)
    url = make_database()

    result = load_prices(url, CsvProvider(tmp_path).fetch(), "csv", today=TODAY)

    assert {f["unit"]: f["error"] for f in result.failures} == {
        "BLANK.csv.gz": "BLANK.csv.gz: no header line in the first 65536 bytes",
        "LONGLINE.csv": "LONGLINE.csv: a line is longer than 1048576 bytes",
        "NUL.csv": "NUL.csv: the header line holds a control character",
        "WIDE.csv": "WIDE.csv: the header line is longer than 65536 bytes",
    }
    assert _closes(url) == [("AAA", "2024-01-02", 10.5), ("CCC", "2024-01-02", 30.5)]
    assert result.rejected_by_reason == {"invalid symbol (1 to 32 of A-Z 0-9 . - ^ = / _ &)": 1}
    assert _rows(url, "select status from raw.ingest_batches") == [("succeeded",)]


def test_a_file_is_read_up_to_its_decompressed_byte_cap_and_no_further(make_database, tmp_path):
    _write(tmp_path / "AAA.csv", HEADER + ROW)
    _write(tmp_path / "TAIL.csv.gz", (HEADER + ROW).encode() + b"\n" * 30_000_000)
    url = make_database()

    provider = CsvProvider(tmp_path, max_file_bytes=10_000_000)
    result = load_prices(url, provider.fetch(), "csv", today=TODAY)

    assert result.failures == [
        {
            "unit": "TAIL.csv.gz",
            "error": "TAIL.csv.gz: more than 10000000 bytes once decompressed; not read further",
        }
    ]
    assert _closes(url) == [("AAA", "2024-01-02", 10.5)]  # not TAIL's row: a failed file is out


def test_an_error_text_with_a_nul_is_still_recorded_as_a_failed_batch(make_database):
    url = make_database()

    def frames():
        raise ValueError("bad value 'A\x00B' in AAA.csv")
        yield  # pragma: no cover

    with pytest.raises(ValueError):
        load_prices(url, frames(), "test", today=TODAY)

    assert _rows(url, "select status, error from raw.ingest_batches") == [
        ("failed", "ValueError: bad value 'A\\x00B' in AAA.csv")
    ]
