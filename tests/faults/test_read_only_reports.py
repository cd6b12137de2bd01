"""Monitoring with its reports folder read-only fails loudly and writes no row: the drift
table never points at a report that does not exist."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.ml.monitoring.test_drift import _create_features_daily, _drift_rows, _run


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """The folder refuses new files, for root too (root ignores modes: the immutable flag)."""
    mode = stat.S_IMODE(folder.stat().st_mode)
    folder.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: a folder cannot be made read-only")
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(mode)


def test_a_read_only_reports_folder_fails_monitoring_loudly_and_writes_no_row(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    _create_features_daily(url)
    reports = tmp_path / "reports"
    first = _run(url, reports)
    rows, files = _drift_rows(url), sorted(reports.iterdir())
    assert [str(r["run_id"]) for r in rows] == [str(first.run_id)] and files == [first.report_path]

    with read_only(reports), pytest.raises(PermissionError) as failure:
        _run(url, reports, model_version="4")  # a new report file, a new row
    assert str(reports) in str(failure.value)

    assert _drift_rows(url) == rows
    assert sorted(reports.iterdir()) == files
    again = _run(url, reports, model_version="4")  # writable again: the same run succeeds
    assert again.report_path.is_file() and len(_drift_rows(url)) == 2
