"""The test mode: an app's jobs run in the test's process through the
production codec and job runner, with no broker process (docs/testing.md).

    from bananas.testing import TestMode

    with TestMode(app) as jobs:
        handle = send_email.enqueue(to="a@b.c", subject="hi")
        jobs.drain()
        assert handle.result() == {"sent": True}

With pytest, the `bananas_test_mode` fixture (registered by the package's
pytest plugin) starts one and stops it after the test.
"""

from .broker import MemoryBroker, TestClock
from .mode import TestJob, TestMode

__all__ = ["MemoryBroker", "TestClock", "TestJob", "TestMode"]
