"""What calibration code raises or warns: one error type for bad input, one warning type for drift."""

from __future__ import annotations


class CalibrationError(ValueError):
    """Calibration input is missing, insufficient or degenerate; the message names what and where."""


class CalibrationDriftWarning(UserWarning):
    """A fresh capture disagrees with the stored calibration by more than a threshold."""
