"""The cloud HTTP API (FastAPI) and the live board it serves."""

from cloud.api.app import create_app

__all__ = ["create_app"]
