"""A real one-node Slurm cluster on localhost for the tests of utils/slurm.pl (Debian's slurm-wlm 22.05 + munge).

``start(root)`` writes ``root/slurm.conf`` (``proctrack/linuxproc``, ``task/none``, ``select/cons_tres`` with
``CR_Core_Memory``, this machine's CPUs, 500 MB per CPU unless a job asks, two partitions: ``debug`` without limits, ``short`` with a 1-minute
limit), starts munged (unless one runs), slurmctld and slurmd as root with their state, spool, logs and pid files
under ``root``, and waits until the node is idle. ``stop()`` stops the daemons it started, by pid.
Clients find the cluster through ``SLURM_CONF``.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

MUNGE_SOCKET = Path("/run/munge/munge.socket.2")


def available() -> str | None:
    """None when a cluster can be started here, else why not."""
    if os.geteuid() != 0:
        return "slurmd and munged need root"
    missing = [p for p in ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scancel") if not shutil.which(p)]
    if missing:
        return f"not installed: {', '.join(missing)} (Debian: apt-get install slurm-wlm munge)"
    return None


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.procs: list[subprocess.Popen] = []

    @property
    def env(self) -> dict:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self, timeout: float = 60.0) -> "Cluster":
        root = self.root
        for d in ("state", "spool", "log"):
            (root / d).mkdir(parents=True, exist_ok=True)
        cpus = os.cpu_count() or 1
        memory_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
        self.conf.write_text(f"""\
ClusterName=espnetllmtest
SlurmctldHost=localhost
SlurmUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=300
DefMemPerCPU=500
KillWait=2
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=localhost MaxTime=1 State=UP
""")
        if not MUNGE_SOCKET.exists():
            MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
            self._spawn(["munged", "--foreground", "--force"], "munged")
            self._wait(lambda: MUNGE_SOCKET.exists(), timeout, "munged did not create its socket")
        self._spawn(["slurmctld", "-D", "-i", "-f", str(self.conf)], "slurmctld")
        self._wait(lambda: subprocess.run(["scontrol", "ping"], env=self.env, capture_output=True,
                                          text=True).stdout.count("UP") > 0, timeout, "slurmctld did not come up")
        self._spawn(["slurmd", "-D", "-N", "localhost", "-f", str(self.conf)], "slurmd")
        self._wait(self._node_idle, timeout, "the node did not become idle")
        return self

    def _spawn(self, cmd, name):
        log = open(self.root / "log" / f"{name}.out", "w")
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                           start_new_session=True))

    def _node_idle(self) -> bool:
        out = subprocess.run(["sinfo", "--noheader", "--format=%T", "--partition=debug"], env=self.env,
                             capture_output=True, text=True).stdout
        return out.strip().startswith("idle")

    def _wait(self, ready, timeout, message):
        deadline = time.monotonic() + timeout
        while not ready():
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited ({p.returncode}); see {self.root}/log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{message} within {timeout:.0f} s; see {self.root}/log")
            time.sleep(0.2)

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs.clear()
