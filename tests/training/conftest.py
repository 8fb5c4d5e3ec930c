"""Training tests run torch on one thread (the fixture lives in tests/conftest.py, for the kernel tests too)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield
