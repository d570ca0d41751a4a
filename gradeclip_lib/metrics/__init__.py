"""Metrics of explanations: localisation against object masks, and intervals for the rates reported."""

from .intervals import format_rate, rate_with_interval, wilson_interval
from .localisation import energy_pointing_game, pointing_game

__all__ = ["energy_pointing_game", "format_rate", "pointing_game", "rate_with_interval", "wilson_interval"]
