"""The default clock.

`time.monotonic` is looked up on every call, not bound at import, so that
`freezegun` (which replaces `time.monotonic`) and `unittest.mock.patch` move it.
"""

import time


def default_timer() -> float:
    """Seconds on the monotonic clock, as patched by whoever patches `time.monotonic`."""
    return time.monotonic()
