"""Async tests here run on asyncio through anyio's pytest plugin (``pytest.mark.anyio``)."""

import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"
