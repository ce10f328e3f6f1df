"""The HTTP API and the supervisors' dashboard (FastAPI)."""

from __future__ import annotations

from relais.api.app import create_app, create_served_app

__all__ = ["create_app", "create_served_app"]
