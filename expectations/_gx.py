"""The one place that imports great_expectations, with its import-time log noise turned down."""

from __future__ import annotations

import logging
from types import ModuleType

# Set by great_expectations itself to INFO, which would outrank the package logger's level.
_GX_LOGGER_FORCED_TO_INFO = "great_expectations.data_context.types.base"


def load_gx() -> ModuleType:
    """Import great_expectations, keeping its INFO chatter out of task logs.

    At import it logs hundreds of INFO lines ("Skipping registering function ...") through
    stdlib logging. The package logger is raised to WARNING unless someone already chose a
    level for it, so an explicit `great_expectations` log level still wins.
    """
    package_logger = logging.getLogger("great_expectations")
    if package_logger.level == logging.NOTSET:
        package_logger.setLevel(logging.WARNING)

    import great_expectations as gx

    forced = logging.getLogger(_GX_LOGGER_FORCED_TO_INFO)
    if forced.level == logging.INFO:
        forced.setLevel(logging.NOTSET)
    return gx
