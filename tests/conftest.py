"""Shared fixtures. Each area's fixtures live in its own section below."""

from __future__ import annotations

import os

import pytest
import torch

# Tests share two cores with each other (and with benchmarks): keep torch to one thread.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def tmp_db(tmp_path, monkeypatch):
    """A private store file for the test (never the user's real database)."""
    path = tmp_path / "gapp.sqlite"
    monkeypatch.setenv("GAPP_DB", str(path))
    return path
