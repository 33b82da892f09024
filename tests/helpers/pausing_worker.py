"""A Dask worker preload for tests/orchestration/test_distributed.py (nothing in the product
waits for a test): the worker logs each partition it commits, and the first worker of the cluster
to reach its second commit pauses just before it, after writing its pid to the claim file, for the
test to kill it with SIGKILL mid-partition. The other workers never pause.

The claim is a file created exclusively, so exactly one worker pauses whichever gets there first.
"""

import os
import time
from pathlib import Path

CLAIM = Path(os.environ["SEEDCONV_TEST_PAUSE_CLAIM"])
COMMITS = Path(os.environ["SEEDCONV_TEST_COMMIT_LOG"])
# Dask imports a preload twice (from the file and from its copy in the worker's folder): the
# original os.replace is kept on the os module, so the second import wraps it, not the wrapper.
_replace = os.__dict__.setdefault("_replace_unpatched", os.replace)
_commits = 0


def _pause_once(target: str) -> None:
    try:
        claim = os.open(CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(claim, f"{os.getpid()} {target}".encode())
    os.close(claim)
    time.sleep(600)


def replace(src, dst, *args, **kwargs):
    global _commits
    if "/.staging/" in str(src):  # a partition's staged folder moving into place: its commit
        _commits += 1
        if _commits == 2:
            _pause_once(str(dst))
    _replace(src, dst, *args, **kwargs)
    if "/.staging/" in str(src):
        with COMMITS.open("a") as log:
            log.write(f"{os.getpid()} {dst}\n")


os.replace = replace
