"""Fixtures for the example projects' tests: their helpers module, and the
deployment tests' one (the Compose implementation), are importable."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "deploy"))
sys.path.insert(0, str(HERE))
