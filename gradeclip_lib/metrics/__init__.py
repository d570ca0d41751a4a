"""Metrics of explanations: localisation against object masks, and intervals for the rates reported."""

from .intervals import rate_with_interval, wilson_interval
from .localisation import energy_pointing_game, pointing_game

__all__ = ["energy_pointing_game", "pointing_game", "rate_with_interval", "wilson_interval"]
