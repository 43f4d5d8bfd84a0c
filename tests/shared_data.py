"""Where the tests find the shared reference data (Citizen Lab lists, OONI fingerprints).

The files are not copied into the repository: they are read from ``../shared/data``
beside the checkout, or from ``$NETSONDE_SHARED_DATA``. A developer without them gets a
skip that says where they were looked for; under CI their absence is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests import REPO

REPO_ROOT = REPO
SHARED_DATA = Path(os.environ.get("NETSONDE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_file(name: str) -> Path:
    """The path of a shared file, for a test; skip (or, under CI, fail) without it."""
    import pytest

    path = SHARED_DATA / name
    if not path.is_file():
        reason = f"shared reference data not found: {path} (set NETSONDE_SHARED_DATA)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path
