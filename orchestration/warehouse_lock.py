"""What a dbt build run by hand says, and may wait for, when another process is writing the warehouse.

DuckDB lets one process write a database file. Dagster's warehouse builds queue in the pool
`warehouse`, so they never meet; but `dbt build` run by hand while the schedule or `make demo` is
building meets the lock, and DuckDB's own error names an interpreter and a PID and nothing else.

This module is a dbt-duckdb plugin (profiles.yml, `plugins`): before dbt opens the file, it tries
the lock once (and again every second for up to `wait_seconds`, from $SEEDCONV_LOCK_WAIT) and, if
another process still holds it, stops the build with a message that names that process's command
line and says what to do. A plugin is the one hook dbt-duckdb calls before it connects.

Dagster's own builds also hold `writing_warehouse` while they write: the pool queues them, but it
alone does not keep two of them apart (see there).
"""

import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt_common.exceptions import DbtRuntimeError
from filelock import FileLock, Timeout

from extract.config import WarehousePaths

_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")


class WarehouseLocked(DbtRuntimeError):
    """Another process holds the DuckDB file's write lock."""


def lock_holder(error: str) -> tuple[int, str] | None:
    """(PID, program) from DuckDB's lock error, or None when `error` is not about a held lock."""
    match = _HOLDER.search(error)
    return (int(match["pid"]), match["program"]) if match else None


def command_line(pid: int, program: str) -> str:
    """The holder's command line from /proc where there is one (Linux), else its program."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return program
    return " ".join(argument.decode(errors="replace") for argument in arguments if argument) or program


def locked_message(database: Path, pid: int, command: str, waited_s: float) -> str:
    # The file's own folder is the warehouse root (profiles.yml's path is WarehousePaths.duckdb).
    published = WarehousePaths(database.parent).published_duckdb
    waited = f" (after waiting {waited_s:.0f} s)" if waited_s >= 1 else ""
    return (
        f"The warehouse file {database} is being written by another process{waited}:\n"
        f"  PID {pid}: {command}\n"
        "Usually that is a warehouse build in Dagster (the schedule, the UI or make demo). Either\n"
        "  - wait for it to end and run dbt again, or let dbt wait: SEEDCONV_LOCK_WAIT=<seconds> dbt build;\n"
        f"  - or query the published copy, which builds never lock: make sql, or duckdb -readonly {published}\n"
        "The lock is DuckDB's own and ends with that process: there is no lock file to delete."
    )


def wait_for_lock(database: Path, config: dict[str, Any], wait_seconds: float, poll_s: float = 1.0) -> None:
    """Returns once this process could take the write lock on `database`; raises WarehouseLocked
    naming the holder if another process still has it after `wait_seconds`."""
    started = time.monotonic()
    while True:
        try:
            # Opened and closed at once: dbt opens the file itself, with the same configuration.
            duckdb.connect(str(database), config=config).close()
            return
        except duckdb.IOException as error:
            holder = lock_holder(str(error))
            if holder is None:
                raise
            waited = time.monotonic() - started
            if waited >= wait_seconds:
                pid, program = holder
                raise WarehouseLocked(locked_message(database, pid, command_line(pid, program), waited)) from None
            time.sleep(poll_s)


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def writing_warehouse(database: Path, log: Callable[[str], None] | None = None) -> Iterator[None]:
    """Held by every Dagster asset that writes `database`, for as long as it writes; a second
    holder waits here until the first lets go.

    The pool `warehouse` queues those assets in the UI, but on the default SQLite instance storage
    Dagster claims a pool slot with a read and then a write, not atomically: two runs that start in
    the same instant can both get the one slot, and the second then fails on DuckDB's lock (seen in
    CI). An OS lock (flock) on a file beside the database is atomic whatever the storage, and ends
    with its process, so a build that is killed leaves nothing to clean up.
    """
    database.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(database.parent / f".{database.name}.writer.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        (log or _to_stderr)(f"waiting for another warehouse build to finish writing {database}")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.wait_seconds = float(os.environ.get("SEEDCONV_LOCK_WAIT") or 0)

    def update_connection_config(self, creds, config: dict[str, Any]) -> None:
        if creds.path and creds.path != ":memory:":
            wait_for_lock(Path(creds.path).resolve(), config, self.wait_seconds)
