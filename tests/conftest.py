import os
import sys
from pathlib import Path

import pytest
from helpers import REAL_DATA


def pytest_configure(config):
    # Plugins installed on the developer's machine must not leak into the tests: entry-point
    # loading is off in this process (subprocess tests opt back in explicitly).
    sys._called_from_test = True
    # Packed stores go to a fresh cache, not the user's (subprocesses inherit it).
    if "MOTIONHUB_CACHE" not in os.environ:
        import tempfile

        os.environ["MOTIONHUB_CACHE"] = config._motionhub_cache = tempfile.mkdtemp(prefix="motionhub-test-cache-")


def pytest_unconfigure(config):
    cache = getattr(config, "_motionhub_cache", None)
    if cache is not None:  # the cache this session made, and nothing it was handed
        import shutil

        shutil.rmtree(cache, ignore_errors=True)
        os.environ.pop("MOTIONHUB_CACHE", None)


@pytest.fixture
def real_data() -> Path:
    """The shared real-data folder, or skip the test when it is absent."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real data folder not found at {REAL_DATA} (set MOTIONHUB_REAL_DATA)")
    return REAL_DATA
