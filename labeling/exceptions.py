"""Labeling's own refusals; the shared ones and the API's error handler live in winnow/exceptions.py."""

from __future__ import annotations

from winnow.exceptions import Conflict


class CalibrationRequired(Conflict):
    code = "calibration_required"


class LeaseExpired(Conflict):
    code = "lease_expired"
