"""`evalbench` whose rank 1 dies (``os._exit``) on its second part: a crash in the middle of sharded extraction.

Used by tests/integration/test_sharded_run.py as the torchrun entry point; the fault lives here, not in evalbench.
"""

from __future__ import annotations

import os
import sys
import time

from evalbench.cli import main
from evalbench.embed import extract

if os.environ.get("RANK") == "1":
    real, calls = extract.embed_rows, [0]

    def dying(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        if calls[0] == 2:  # after rank 0 has stored its shard of this part and waits at the barrier
            time.sleep(5)
            os._exit(3)
        return real(*args, **kwargs)

    extract.embed_rows = dying

sys.exit(main(sys.argv[1:]))
