"""The default clock.

`time.monotonic` is looked up on every call, not bound at import, so that
`freezegun` (which replaces `time.monotonic`) and `unittest.mock.patch` move it.
The lookup and the call are made in C (`methodcaller` on the `time` module): a
Python function here cost a miss about 2% of its instructions (two clock reads).
"""

import time
from collections.abc import Callable
from functools import partial
from operator import methodcaller

#: Seconds on the monotonic clock, as patched by whoever patches `time.monotonic`.
default_timer: Callable[[], float] = partial(methodcaller("monotonic"), time)
