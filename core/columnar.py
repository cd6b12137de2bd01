"""Columnar reads: a query's rows as Arrow record batches, never as per-value Python objects.

The ADBC PostgreSQL driver reads PostgreSQL's binary COPY stream straight into Arrow arrays
(typed columns: float4 stays float32, date stays date32), one bounded batch at a time, so a
reader that writes each batch into preallocated numpy arrays peaks at its result plus one
batch. psycopg2's `fetchall()` builds a tuple of boxed Python values per row first: on the
dev universe's panel (1.4M rows x 150 columns) that alone was several GB.

Queries take positional parameters as `$1`, `$2` (PostgreSQL's own placeholders).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
import pyarrow as pa

from core.urls import libpq_url


@contextmanager
def record_batches(
    url: str, query: str, params: Sequence[Any] = ()
) -> Iterator[pa.RecordBatchReader]:
    """The result of `query` as a stream of Arrow record batches (read inside the `with`)."""
    import adbc_driver_postgresql.dbapi as adbc

    with adbc.connect(libpq_url(url)) as conn, conn.cursor() as cur:
        cur.execute(query, parameters=tuple(params) if params else None)
        yield cur.fetch_record_batch()


def read_table(url: str, query: str, params: Sequence[Any] = ()) -> pa.Table:
    """The whole result of `query` as one Arrow table."""
    with record_batches(url, query, params) as reader:
        return reader.read_all()


def read_frame(url: str, query: str, params: Sequence[Any] = ()) -> pd.DataFrame:
    """The result of `query` as a DataFrame: dates as `datetime.date`, text as `str`, numbers
    in their column's own width (a `real` column stays float32)."""
    frame: pd.DataFrame = read_table(url, query, params).to_pandas(date_as_object=True)
    return frame
