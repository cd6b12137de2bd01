"""A deterministic synthetic market: any number of symbols, any span, no network, no files.

For benchmarks and tests that need more data than the sample ships. Each symbol is a
geometric random walk with its own drift and volatility and student-t shocks; open, high,
low and volume are drawn around it so every row is a valid bar. Occasional 2:1 and 3:1
splits cut the raw prices (split_factor set that day) while adj_close stays continuous,
and occasional days are missing, as in real vendor data.

Each symbol's random stream comes from (seed, symbol index) and always covers the whole
[start, end] span of the provider, so a symbol's rows do not depend on which other
symbols or which sub-range a fetch asks for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import date

import numpy as np
import pandas as pd

from ingest.providers.base import CHUNK_ROWS, Provider
from ingest.schema import PRICE_COLUMNS

_SYMBOL = re.compile(r"SYN(\d{4,})")
_TRADING_DAYS = 252
_COLUMNS = [*PRICE_COLUMNS, "split_factor"]


def symbol_name(index: int) -> str:
    return f"SYN{index:04d}"


class SyntheticProvider(Provider):
    name = "synthetic"

    def __init__(
        self,
        n_symbols: int = 20,
        start: date = date(2015, 1, 1),
        end: date = date(2024, 12, 31),
        seed: int = 0,
        split_prob: float = 0.0005,
        gap_prob: float = 0.002,
    ) -> None:
        if n_symbols < 0:
            raise ValueError(f"n_symbols must be >= 0, got {n_symbols}")
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        for label, p in (("split_prob", split_prob), ("gap_prob", gap_prob)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{label} must be in [0, 1), got {p}")
        self.n_symbols = n_symbols
        self.start = start
        self.end = end
        self.seed = seed
        self.split_prob = split_prob
        self.gap_prob = gap_prob
        self._days = pd.bdate_range(start, end)
        self._dates = np.asarray(self._days.date, dtype=object)

    def available_symbols(self) -> list[str]:
        return [symbol_name(i) for i in range(self.n_symbols)]

    def fetch(
        self,
        symbols: Sequence[str] | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> Iterator[pd.DataFrame]:
        indices = self._indices(symbols)
        lo = 0 if start is None else int(self._days.searchsorted(pd.Timestamp(start), "left"))
        hi = (
            len(self._days)
            if end is None
            else int(self._days.searchsorted(pd.Timestamp(end), "right"))
        )
        if lo >= hi:
            return
        pending: list[dict[str, np.ndarray]] = []
        pending_rows = 0
        for index in indices:
            columns = self._symbol_columns(index, lo, hi)
            pending.append(columns)
            pending_rows += len(columns["trade_date"])
            if pending_rows >= CHUNK_ROWS:
                yield from _frames(pending, final=False)
                pending_rows = sum(len(c["trade_date"]) for c in pending)
        yield from _frames(pending, final=True)

    def _indices(self, symbols: Sequence[str] | None) -> list[int]:
        if symbols is None:
            return list(range(self.n_symbols))
        indices, unknown = [], []
        for symbol in symbols:
            match = _SYMBOL.fullmatch(symbol.strip().upper())
            if match and int(match.group(1)) < self.n_symbols:
                indices.append(int(match.group(1)))
            else:
                unknown.append(symbol)
        if unknown:
            raise ValueError(
                f"synthetic provider has no data for {', '.join(unknown)}; it has "
                f"{symbol_name(0)}..{symbol_name(self.n_symbols - 1)}"
            )
        return indices

    def _symbol_columns(self, index: int, lo: int, hi: int) -> dict[str, np.ndarray]:
        """One symbol's rows over the provider's whole span, cut to days [lo, hi)."""
        n = len(self._days)
        rng = np.random.default_rng([self.seed, index])

        drift = rng.normal(0.05, 0.08) / _TRADING_DAYS
        sigma = rng.uniform(0.01, 0.03)
        dof = rng.uniform(3.5, 6.0)
        first_close = float(np.clip(np.exp(rng.normal(np.log(50.0), 0.8)), 5.0, 800.0))
        base_volume = np.exp(rng.normal(np.log(1.5e6), 1.0))

        # Student-t shocks scaled to unit variance: fat tails at the same volatility, cut at
        # 8 sigma (a 60-sigma day once in a few million rows is noise, not realism).
        shocks = np.clip(rng.standard_t(dof, n) * np.sqrt((dof - 2.0) / dof), -8.0, 8.0)
        returns = drift - 0.5 * sigma**2 + sigma * shocks
        returns[0] = 0.0
        overnight = rng.normal(0.0, 0.25 * sigma, n)
        wick_up = np.abs(rng.normal(0.0, 0.6 * sigma, n))
        wick_down = np.abs(rng.normal(0.0, 0.6 * sigma, n))
        volume_noise = rng.normal(0.0, 0.35, n)
        split_draw = rng.random(n)
        split_kind = rng.random(n)
        gap_draw = rng.random(n)

        split = split_draw < self.split_prob
        split[0] = False
        factor = np.where(split, np.where(split_kind < 0.75, 2.0, 3.0), 1.0)
        shares = np.cumprod(factor)  # shares per original share, on and after each split

        # Log prices of one original share (continuous), then per current share (raw).
        log_adjusted = np.log(first_close) + np.cumsum(returns)
        log_close = log_adjusted - np.log(shares)
        prev_close = np.concatenate(([log_close[0] - returns[0]], log_close[:-1]))
        log_open = prev_close - np.log(factor) + overnight

        close = np.maximum(np.round(np.exp(log_close), 4), 0.0001)
        open_ = np.maximum(np.round(np.exp(log_open), 4), 0.0001)
        high = np.round(np.maximum(open_, close) * np.exp(wick_up), 4)
        low = np.round(np.minimum(open_, close) * np.exp(-wick_down), 4)
        high = np.maximum(high, np.maximum(open_, close))
        low = np.clip(low, 0.0001, np.minimum(open_, close))
        # Yahoo's convention: adj_close equals close after the last split, and earlier
        # closes are divided by the splits that came after them.
        adj_close = np.maximum(np.round(close * shares / shares[-1], 6), 0.000001)
        volume = np.round(
            base_volume * shares * np.exp(volume_noise + 0.35 * np.abs(shocks))
        ).astype(np.int64)

        keep = gap_draw >= self.gap_prob
        keep |= split  # a split day always reports, or the event would be lost
        keep[:lo] = False
        keep[hi:] = False
        rows = int(keep.sum())
        return {
            "symbol": np.full(rows, symbol_name(index), dtype=object),
            "trade_date": self._dates[keep],
            "open": open_[keep],
            "high": high[keep],
            "low": low[keep],
            "close": close[keep],
            "adj_close": adj_close[keep],
            "volume": volume[keep],
            "split_factor": np.where(split, factor, np.nan)[keep],
        }


def _frames(pending: list[dict[str, np.ndarray]], final: bool) -> Iterator[pd.DataFrame]:
    """Emit full CHUNK_ROWS frames from `pending` (all of it when final); keep the rest."""
    if not pending:
        return
    merged = {c: np.concatenate([p[c] for p in pending]) for c in _COLUMNS}
    total = len(merged["trade_date"])
    stop = total if final else total - total % CHUNK_ROWS
    for offset in range(0, stop, CHUNK_ROWS):
        end = min(offset + CHUNK_ROWS, stop)
        yield pd.DataFrame({c: merged[c][offset:end] for c in _COLUMNS})
    pending.clear()
    if stop < total:
        pending.append({c: merged[c][stop:] for c in _COLUMNS})
