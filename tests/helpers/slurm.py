"""A single-node SLURM on loopback for the tests: munged, slurmctld and slurmd, from Debian's
slurm-wlm and munge, with every file (key, sockets, state, logs) under a temporary folder.

`.ci/run` installs the packages; on a machine without them, or not running as root (slurmd
starts jobs as their user), `unavailable()` says why and the test that needs SLURM is skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from orchestration.cluster import free_port

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo")


def unavailable() -> str | None:
    """Why a SLURM cannot be started here, or None."""
    missing = [program for program in PROGRAMS if shutil.which(program) is None]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} not found; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs, and the tests do not"
    return None


def slurm_conf(root: Path, node: str, cpus: int, memory_mb: int) -> str:
    ports = free_port(), free_port()
    return f"""
ClusterName=seedconv-test
SlurmctldHost={node}(127.0.0.1)
AuthType=auth/munge
CryptoType=crypto/munge
AuthInfo=socket={root}/munge.socket
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ReturnToService=2
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


class Slurm:
    """The three daemons, started in order and stopped in reverse; `env` points sbatch at them."""

    def __init__(self, root: Path):
        self.root = root
        self.processes: list[subprocess.Popen] = []
        root.mkdir(parents=True, exist_ok=True)
        for folder in ("state", "spool"):
            (root / folder).mkdir(exist_ok=True)
        self.conf = root / "slurm.conf"
        self.conf.write_text(slurm_conf(root, socket.gethostname().split(".")[0], os.cpu_count() or 1, 16000))
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def __enter__(self) -> Slurm:
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        munge = [
            "munged", "--foreground", "--force", f"--key-file={key}", f"--socket={self.root}/munge.socket",
            f"--pid-file={self.root}/munged.pid", f"--log-file={self.root}/munged.log",
            f"--seed-file={self.root}/munged.seed",
        ]  # fmt: skip
        self._start(munge)
        self._start(["slurmctld", "-D", "-f", str(self.conf)])
        self._start(["slurmd", "-D", "-f", str(self.conf)])
        deadline = time.monotonic() + 60
        while "idle" not in self.sinfo():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the SLURM node never came up: {self.sinfo()!r}\n{self.logs()}")
            time.sleep(0.5)
        return self

    def _start(self, command: list[str]) -> None:
        log = (self.root / f"{command[0]}.out").open("w")
        self.processes.append(subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT))

    def sinfo(self) -> str:
        done = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, capture_output=True, text=True)
        return done.stdout.strip()

    def jobs(self) -> list[str]:
        done = subprocess.run(["squeue", "-h", "-o", "%i %T"], env=self.env, capture_output=True, text=True)
        return done.stdout.strip().splitlines()

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text()[-2000:]}" for path in sorted(self.root.glob("*.log")))

    def __exit__(self, *exc) -> None:
        subprocess.run(["scancel", "--full", "--signal=KILL", "--user=root"], env=self.env, capture_output=True)
        # The jobs' step daemons end with their jobs; stopping slurmd first would orphan them.
        deadline = time.monotonic() + 30
        while self.jobs() and time.monotonic() < deadline:
            time.sleep(0.5)
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
