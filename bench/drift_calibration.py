"""Calibration of the drift thresholds on the dev universe (issue 16): how many features drift,
month by month, with the settings' windows (a year of reference at the end of the training
window, the last 20 trading days as current), in quiet markets and in a real regime shift.

    .venv/bin/python bench/drift_calibration.py            # needs a built dev-universe database
    .venv/bin/python bench/drift_calibration.py 1.0,1.5    # the threshold margins to compare
    .venv/bin/python bench/drift_calibration.py 1.0 2013   # and the quiet years

MARKETFLOW_DATABASE_URL names a database where `marketflow ingest --provider csv --path
../shared/data/dev-universe && marketflow features` ran. Each case is a champion trained up to
the end of the month before its current window (monitoring runs within a week of a weekly
training, so this is the far end of what it sees). Prints, per case, the share of drifted
features at the configured per-feature threshold and the verdict at the configured share,
with the time and peak memory of each `run_drift` (the whole monitoring step a user runs).
It is a calibration table, not a timed benchmark: the numbers go in docs/monitoring.md.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from core.settings import get_settings
from ml.data.handler import discover_features
from ml.monitoring.monitor import reference_window, run_drift

# (label, first day of the current month); quiet: 2013 and 2014 (a calm bull market), shift:
# the autumn of 2008 and August 2011 (volatility doubled or more within weeks).
YEARS = [int(y) for y in (sys.argv[2] if len(sys.argv) > 2 else "2013,2014").split(",")]
QUIET = [("quiet", date(year, month, 1)) for year in YEARS for month in range(1, 13)]
SHIFT = [("shift", date(2008, 9, 1)), ("shift", date(2008, 10, 1)),
         ("shift", date(2008, 11, 1)), ("shift", date(2011, 8, 1))]  # fmt: skip


def _month_end(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def main() -> int:
    settings = get_settings()
    monitoring = settings.monitoring
    url = settings.db.url
    features = discover_features(url)
    print(
        f"dev universe drift calibration: {len(features)} features, reference "
        f"{monitoring.reference_days} days, current {monitoring.current_days} trading days, "
        f"feature threshold {monitoring.feature_threshold} (Wasserstein) / "
        f"{monitoring.psi_threshold} (PSI), dataset drift at {monitoring.drift_share:.0%}"
    )
    print("case   month    share of drifted features per margin (* = dataset drift)")
    # One run per case at margin 1; a larger margin m flags a continuous feature when its
    # score reaches m x its margin-1 threshold (its reference's largest window distance,
    # when that is above the floor), so every margin is read off the same run.
    margins = [float(m) for m in (sys.argv[1] if len(sys.argv) > 1 else "1.0").split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as reports:
        for label, first in QUIET + SHIFT:
            train_end = first - timedelta(days=1)
            training = (date(2000, 1, 1), train_end)
            t0 = time.perf_counter()
            result = run_drift(
                url,
                reference_window=reference_window(training, monitoring.reference_days),
                current_days=monitoring.current_days,
                features=features,
                reports_dir=Path(reports),
                model_name=None,
                model_version=None,
                mlflow_run_id=None,
                run_date=_month_end(first),
                drift_share_threshold=monitoring.drift_share,
                reference_rows=monitoring.reference_rows,
                feature_threshold=monitoring.feature_threshold,
                psi_threshold=monitoring.psi_threshold,
                threshold_margin=1.0,
            )
            seconds = time.perf_counter() - t0
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            shares = []
            for margin in margins:
                flagged = [
                    d["score"] >= (d["threshold"] if d["method"] == "psi"
                                   else max(monitoring.feature_threshold, margin * d["threshold"]))
                    for d in result.per_feature.values()
                ]  # fmt: skip
                share = sum(flagged) / len(flagged)
                shares.append(share)
                rows.append((margin, label, share >= monitoring.drift_share))
            cells = "  ".join(f"x{m}: {s:>4.0%}{'*' if s >= monitoring.drift_share else ' '}"
                              for m, s in zip(margins, shares, strict=True))  # fmt: skip
            print(f"{label:<6} {first:%Y-%m}  {cells}  {seconds:>7.1f}s {peak:>6.0f} MB")
    for margin in margins:
        quiet = sum(d for m, label, d in rows if m == margin and label == "quiet")
        shifts = sum(d for m, label, d in rows if m == margin and label == "shift")
        print(f"margin {margin}: quiet months flagged {quiet} of {len(QUIET)}, "
              f"shift months flagged {shifts} of {len(SHIFT)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
