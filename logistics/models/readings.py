"""Models: readings."""

from __future__ import annotations
