"""Labeling's own refusals. The shared ones and the API handler live in winnow/exceptions.py.

The shared names are imported here too, because labeling modules import them from this module.
"""

from __future__ import annotations

from winnow.exceptions import (  # noqa: F401 - re-exported for labeling modules
    Conflict,
    DomainError,
    IllegalTransition,
    InvalidInput,
    NotAllowed,
    NotFound,
    StorageUnavailable,
)


class CalibrationRequired(Conflict):
    code = "calibration_required"


class LeaseExpired(Conflict):
    code = "lease_expired"
