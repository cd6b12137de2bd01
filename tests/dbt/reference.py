"""A plain numpy/pandas reference for every column of marts.features_daily and labels_daily.

Written from the formulas documented in dbt/models/marts/_marts__models.yml, not from the
SQL: each window is taken from scratch (sliding_window_view), so a bug in the SQL's window
frames, NULL rules or incremental bookkeeping shows up as a mismatch. Conventions copied
on purpose: sample standard deviations (ddof=1) except Bollinger's population one, linear
quantile interpolation, pandas' average rank, ties of extremes resolved to the most recent
row, NULL (NaN) where a window is not full or a formula divides by zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

WINDOWS = (5, 10, 20, 30, 60)
LONGEST = max(WINDOWS)
RANKED = ("ret_5d", "ret_20d", "vol_20d", "rsi_14", "volume_z_20d")
LABEL_HORIZONS = {"fwd_ret_1d": 1, "fwd_ret_5d": 5, "fwd_ret_20d": 20, "trade_ret_1d": 2}


def _rolling(values: np.ndarray, n: int, stat, min_history: int | None = None) -> np.ndarray:
    """stat(windows) over every full window of n rows ending at t (NaN before); rows with a
    history below `min_history` (default n) are NaN too."""
    out = np.full(len(values), np.nan)
    if len(values) >= n:
        out[n - 1 :] = stat(sliding_window_view(values, n))
    if min_history is not None:
        out[: min_history - 1] = np.nan
    return out


def _shift(values: np.ndarray, k: int) -> np.ndarray:
    """values[t - k] (k > 0) or values[t + |k|] (k < 0), NaN where out of range."""
    out = np.full(len(values), np.nan)
    if k > 0 and len(values) > k:
        out[k:] = values[:-k]
    elif k < 0 and len(values) > -k:
        out[:k] = values[-k:]
    elif k == 0:
        out[:] = values
    return out


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0 (SQL's nullif)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator == 0, np.nan, numerator / denominator)


def _rows_since(windows: np.ndarray, extreme) -> np.ndarray:
    """Rows back from the last element to the most recent occurrence of the extreme."""
    target = extreme(windows, axis=1, keepdims=True)
    reversed_hits = (windows == target)[:, ::-1]
    return reversed_hits.argmax(axis=1).astype(float)


def _percentile_rank(windows: np.ndarray) -> np.ndarray:
    last = windows[:, -1:]
    below = (windows < last).sum(axis=1)
    equal = (windows == last).sum(axis=1)
    return (below + (equal + 1) / 2) / windows.shape[1]


def _regression(windows: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Least squares of each window on x (same x rows): slope, intercept, R^2."""
    xm = x.mean(axis=1, keepdims=True)
    ym = windows.mean(axis=1, keepdims=True)
    sxx = ((x - xm) ** 2).sum(axis=1)
    syy = ((windows - ym) ** 2).sum(axis=1)
    sxy = ((x - xm) * (windows - ym)).sum(axis=1)
    slope = sxy / sxx
    intercept = ym[:, 0] - slope * xm[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = sxy**2 / (sxx * syy)
    return slope, intercept, r2


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    am = a - a.mean(axis=1, keepdims=True)
    bm = b - b.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (am * bm).sum(axis=1) / np.sqrt((am**2).sum(axis=1) * (bm**2).sum(axis=1))
    constant = (np.ptp(a, axis=1) == 0) | (np.ptp(b, axis=1) == 0)
    return np.where(constant, np.nan, value)


def _ewm(windows: np.ndarray, alpha: float) -> np.ndarray:
    weights = (1 - alpha) ** np.arange(windows.shape[1] - 1, -1, -1, dtype=float)
    return (windows * weights).sum(axis=1) / weights.sum()


def symbol_features(bars: pd.DataFrame) -> dict[str, np.ndarray]:
    """Every feature of one symbol's bars (sorted by trade_date), as named in the mart."""
    factor = (bars["adj_close"] / bars["close"]).to_numpy(float)
    o = bars["open"].to_numpy(float) * factor
    h = bars["high"].to_numpy(float) * factor
    lo = bars["low"].to_numpy(float) * factor
    c = bars["adj_close"].to_numpy(float)
    v = bars["volume"].to_numpy(float) / factor
    n = len(c)
    history = np.arange(1, n + 1, dtype=float)
    prev = _shift(c, 1)
    ret = c / prev - 1
    change = c - prev
    gain, loss = np.maximum(change, 0), np.maximum(-change, 0)
    gain[np.isnan(change)] = np.nan
    loss[np.isnan(change)] = np.nan
    volume_change = v - _shift(v, 1)
    abs_ret_volume = np.abs(ret) * v
    log_volume = np.log(v + 1)
    f: dict[str, np.ndarray] = {
        "adj_close": c,
        "history_days": history,
        "close_price": bars["close"].to_numpy(float),
        "dollar_volume_20d": _rolling(
            bars["close"].to_numpy(float) * bars["volume"].to_numpy(float), 20, lambda w: w.mean(1)
        ),
        "ret_1d": ret,
        "ret_5d": c / _shift(c, 5) - 1,
        "ret_20d": c / _shift(c, 20) - 1,
        "vol_20d": _rolling(ret, 20, lambda w: w.std(axis=1, ddof=1), min_history=21),
    }
    avg_gain = _rolling(gain, 14, lambda w: w.mean(1), min_history=15)
    avg_loss = _rolling(loss, 14, lambda w: w.mean(1), min_history=15)
    movement = avg_gain + avg_loss
    f["rsi_14"] = np.where(movement == 0, 50.0, 100 * _divide(avg_gain, movement))

    def volume_z(w: np.ndarray) -> np.ndarray:
        mean, sd = w.mean(1), w.std(axis=1, ddof=1)
        return np.where(sd > 1e-12 * np.abs(mean), (w[:, -1] - mean) / sd, np.nan)

    f["volume_z_20d"] = _rolling(v, 20, volume_z)
    span = h - lo
    f["kmid"] = (c - o) / o
    f["klen"] = span / o
    f["kmid2"] = _divide(c - o, span)
    f["kup"] = (h - np.maximum(o, c)) / o
    f["kup2"] = _divide(h - np.maximum(o, c), span)
    f["klow"] = (np.minimum(o, c) - lo) / o
    f["klow2"] = _divide(np.minimum(o, c) - lo, span)
    f["ksft"] = (2 * c - h - lo) / o
    f["ksft2"] = _divide(2 * c - h - lo, span)
    f["open0"], f["high0"], f["low0"] = o / c, h / c, lo / c
    for d in WINDOWS:
        moves = d + 1  # windows of d daily moves need d + 1 rows

        def regression(part: int, d: int = d) -> np.ndarray:
            def stat(w: np.ndarray) -> np.ndarray:
                x = sliding_window_view(history, d)
                return _regression(w, x)[part]

            return _rolling(c, d, stat)

        slope, intercept, r2 = regression(0), regression(1), regression(2)
        max_high = _rolling(h, d, lambda w: w.max(1))
        min_low = _rolling(lo, d, lambda w: w.min(1))
        nonconstant = _rolling(c, d, lambda w: np.ptp(w, axis=1)) > 0
        f[f"roc_{d}d"] = _shift(c, d) / c
        f[f"ma_{d}d"] = _rolling(c, d, lambda w: w.mean(1)) / c
        f[f"std_{d}d"] = _rolling(c, d, lambda w: w.std(axis=1, ddof=1)) / c
        f[f"beta_{d}d"] = slope / c
        f[f"rsqr_{d}d"] = np.where(nonconstant, r2, np.nan)
        f[f"resi_{d}d"] = (c - (intercept + slope * history)) / c
        f[f"max_{d}d"] = max_high / c
        f[f"min_{d}d"] = min_low / c
        f[f"qtlu_{d}d"] = _rolling(c, d, lambda w: np.quantile(w, 0.8, axis=1)) / c
        f[f"qtld_{d}d"] = _rolling(c, d, lambda w: np.quantile(w, 0.2, axis=1)) / c
        f[f"rank_{d}d"] = _rolling(c, d, _percentile_rank)
        f[f"rsv_{d}d"] = _divide(c - min_low, max_high - min_low)
        f[f"imax_{d}d"] = _rolling(h, d, lambda w: _rows_since(w, np.max))
        f[f"imin_{d}d"] = _rolling(lo, d, lambda w: _rows_since(w, np.min))
        f[f"corr_{d}d"] = (
            np.full(n, np.nan)
            if n < d
            else np.concatenate(
                [
                    np.full(d - 1, np.nan),
                    _corr(sliding_window_view(c, d), sliding_window_view(log_volume, d)),
                ]
            )
        )
        f[f"cntp_{d}d"] = _rolling(
            (change > 0).astype(float), d, lambda w: w.mean(1), min_history=moves
        )
        f[f"cntn_{d}d"] = _rolling(
            (change < 0).astype(float), d, lambda w: w.mean(1), min_history=moves
        )
        f[f"sump_{d}d"] = _divide(
            _rolling(gain, d, lambda w: w.sum(1), min_history=moves),
            _rolling(np.abs(change), d, lambda w: w.sum(1), min_history=moves),
        )
        f[f"vsump_{d}d"] = _divide(
            _rolling(np.maximum(volume_change, 0), d, lambda w: w.sum(1), min_history=moves),
            _rolling(np.abs(volume_change), d, lambda w: w.sum(1), min_history=moves),
        )
        f[f"vma_{d}d"] = _divide(_rolling(v, d, lambda w: w.mean(1)), v)
        f[f"vstd_{d}d"] = _divide(_rolling(v, d, lambda w: w.std(axis=1, ddof=1)), v)
        f[f"wvma_{d}d"] = _divide(
            _rolling(abs_ret_volume, d, lambda w: w.std(axis=1, ddof=1), min_history=moves),
            _rolling(abs_ret_volume, d, lambda w: w.mean(1), min_history=moves),
        )
    macd = _rolling(c, LONGEST, lambda w: _ewm(w, 2 / 13) - _ewm(w, 2 / 27)) / c
    signal = _rolling(macd, 20, lambda w: _ewm(w, 0.2), min_history=LONGEST + 19)
    f["macd_12_26"], f["macd_signal_9"], f["macd_hist"] = macd, signal, macd - signal
    mean_20 = _rolling(c, 20, lambda w: w.mean(1))
    pop_sd_20 = _rolling(c, 20, lambda w: w.std(axis=1, ddof=0))
    f["bb_pctb_20"] = _divide(c - mean_20 + 2 * pop_sd_20, 4 * pop_sd_20)
    true_range = np.maximum.reduce([h - lo, np.abs(h - prev), np.abs(lo - prev)])
    f["atr_14"] = _rolling(true_range, 14, lambda w: w.mean(1), min_history=15) / c
    return f


def expected_features(prices: pd.DataFrame) -> pd.DataFrame:
    """features_daily from raw price rows (columns of raw.prices), sorted by symbol, date."""
    frames = []
    ordered = prices.sort_values(["symbol", "trade_date"], ignore_index=True)
    for symbol, bars in ordered.groupby("symbol", sort=True):
        frame = pd.DataFrame(symbol_features(bars))
        frame.insert(0, "trade_date", bars["trade_date"].to_numpy())
        frame.insert(0, "symbol", symbol)
        frames.append(frame)
    features = pd.concat(frames, ignore_index=True)
    for column in RANKED:
        ranks = features.groupby("trade_date")[column].rank(method="min")
        counts = features.groupby("trade_date")[column].transform("count")
        features[f"cs_rank_{column}"] = ((ranks - 1) / (counts - 1)).where(counts > 1)
    return features


def expected_labels(prices: pd.DataFrame) -> pd.DataFrame:
    frames = []
    ordered = prices.sort_values(["symbol", "trade_date"], ignore_index=True)
    for symbol, bars in ordered.groupby("symbol", sort=True):
        c = bars["adj_close"].to_numpy(float)
        frame = pd.DataFrame({"symbol": symbol, "trade_date": bars["trade_date"].to_numpy()})
        for h in (1, 5, 20):
            frame[f"fwd_ret_{h}d"] = _shift(c, -h) / c - 1
        frame["trade_ret_1d"] = _shift(c, -2) / _shift(c, -1) - 1
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
