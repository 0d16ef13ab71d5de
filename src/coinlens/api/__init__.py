"""The web app: REST under /api/v1 and the review pages (FastAPI)."""

from coinlens.api.app import create_app

__all__ = ["create_app"]
