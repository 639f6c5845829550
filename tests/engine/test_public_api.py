"""`sim.__all__` is exactly the API documented in docs/api.md (as SimPy checks its own)."""

from __future__ import annotations

import re
from pathlib import Path

import sim

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_all_matches_the_api_page():
    documented = set(re.findall(r"^\| `(\w+)", DOC.read_text(), flags=re.M))
    assert documented == set(sim.__all__)


def test_every_public_name_is_importable_and_documented_in_code():
    for name in sim.__all__:
        obj = getattr(sim, name)
        assert obj.__doc__, name
