"""Fixtures of the product-layer tests: small scenario files on disk, a guard against runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from product_helpers import FAST_TOML, SMALL_TOML

from sim.world import Environment


@pytest.fixture
def write(tmp_path: Path):
    """Write ``text`` (dedented) to ``tmp_path / name`` and return the path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def small_toml(write) -> Path:
    return write("small.toml", SMALL_TOML)


@pytest.fixture
def fast_toml(write) -> Path:
    return write("fast.toml", FAST_TOML)


@pytest.fixture
def no_simulation(monkeypatch):
    """Make any simulated time a test failure: refusals happen before the run."""

    def refuse_to_run(self, until=None):
        raise AssertionError("simulated time ran: the input should have been refused first")

    monkeypatch.setattr(Environment, "run", refuse_to_run)
