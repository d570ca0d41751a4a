"""Metrics of explanations: localisation against object masks (faithfulness comes later)."""

from .localisation import energy_pointing_game, pointing_game

__all__ = ["energy_pointing_game", "pointing_game"]
