"""Writes of participant data (one module per workflow, re-exported here)."""

from .safety import safety_alert_acknowledge, safety_alert_raise

__all__ = ["safety_alert_acknowledge", "safety_alert_raise"]
