"""The resources of `/api/v1`, one flask-smorest blueprint each."""

from __future__ import annotations

from api.openapi import Blueprint
from api.resources import drift, health, models, score, signals

BLUEPRINTS: tuple[Blueprint, ...] = (health.blp, signals.blp, models.blp, drift.blp, score.blp)

__all__ = ["BLUEPRINTS"]
