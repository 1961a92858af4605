"""A real one-node Slurm for the tests: munged, slurmctld and slurmd run as this user's own processes in
a temporary directory, from a slurm.conf generated for this host (one node, a debug partition, no
cgroups, no systemd, no accounting database), on free ports, and stopped again afterwards."""
import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time

SBIN = ["/usr/sbin", "/sbin", "/usr/local/sbin"]
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel")
# The node offers more CPUs than the machine has (config_overrides), so that several one-CPU array
# tasks run side by side even on a 2-core machine; the cells are tiny.
NODE_CPUS = 4


def find(program):
    return shutil.which(program) or next((os.path.join(d, program) for d in SBIN if os.access(os.path.join(d, program), os.X_OK)), None)


def missing_programs():
    """The Slurm and munge programs this machine lacks (none: the cluster can start)."""
    return [p for p in DAEMONS + CLIENTS if find(p) is None]


def free_ports(count):
    """Ports nothing listens on now, all different (each held open until all are chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="attnbench-slurm-")
        os.chmod(self.dir, 0o755)  # munged wants every directory above its socket searchable by all
        self.node = socket.gethostname().split(".")[0]
        self.conf = os.path.join(self.dir, "slurm.conf")
        self.daemons = {}
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        for var in [v for v in self.env if v.startswith(("SLURM_", "SBATCH_", "SQUEUE_")) and v != "SLURM_CONF"]:
            del self.env[var]  # a surrounding Slurm job's settings must not leak into this cluster

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write_conf(self, user):
        for sub in ("state", "spool", "log"):
            os.makedirs(self.path(sub), exist_ok=True)
        ctld_port, slurmd_port = free_ports(2)
        with open(self.conf, "w") as f:
            f.write(f"""ClusterName=attnbench-test
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.path("run", "munge.socket")}
StateSaveLocation={self.path("state")}
SlurmdSpoolDir={self.path("spool")}
SlurmctldPidFile={self.path("run", "slurmctld.pid")}
SlurmdPidFile={self.path("run", "slurmd.pid")}
SlurmctldLogFile={self.path("log", "slurmctld.log")}
SlurmdLogFile={self.path("log", "slurmd.log")}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
KillWait=5
MessageTimeout=60
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={NODE_CPUS} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")

    def start(self):
        os.makedirs(self.path("run"), mode=0o755)
        os.makedirs(self.path("munge"), mode=0o700)
        key = self.path("munge", "munge.key")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(os.urandom(1024))
        self.write_conf(getpass.getuser())
        self.spawn("munged", "-F", f"--socket={self.path('run', 'munge.socket')}", f"--key-file={key}",
                   f"--pid-file={self.path('run', 'munged.pid')}", f"--seed-file={self.path('munge', 'seed')}",
                   f"--log-file={self.path('log', 'munged.log')}")
        self.wait_for(lambda: os.path.exists(self.path("run", "munge.socket")), "munged to open its socket", 30)
        self.spawn("slurmctld", "-D", "-i", "-f", self.conf)
        self.spawn("slurmd", "-D", "-N", self.node, "-f", self.conf)
        self.wait_for(lambda: self.output("sinfo", "--noheader", "--format=%T").strip() == "idle",
                      "the node to be idle", 60)

    def spawn(self, program, *args):
        with open(self.path("log", program + ".out"), "w") as log:
            self.daemons[program] = subprocess.Popen([find(program), *args], stdout=log, stderr=subprocess.STDOUT,
                                                     env=self.env, start_new_session=True)

    def stop(self):
        """Cancels what is left in the queue, waits for it to end, stops the daemons, removes the directory."""
        if "slurmctld" in self.daemons and self.daemons["slurmctld"].poll() is None:
            subprocess.run([find("scancel"), "--user", str(os.getuid())], env=self.env, capture_output=True)
            try:
                self.wait_for(lambda: not self.output("squeue", "--noheader").strip(), "the cancelled jobs to end", 30)
            except AssertionError:
                pass  # stopping the daemons below ends them as well
        for program in reversed(DAEMONS):
            proc = self.daemons.get(program)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def diagnostics(self):
        """The daemons' logs, for a failure message."""
        out = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log", "slurmctld.out", "slurmd.out", "munged.out"):
            p = self.path("log", name)
            if os.path.exists(p):
                out.append(f"--- {name}\n" + "".join(open(p, errors="replace").readlines()[-25:]))
        return "\n".join(out)

    def output(self, program, *args):
        done = subprocess.run([find(program), *args], env=self.env, capture_output=True, text=True, timeout=60)
        return done.stdout if done.returncode == 0 else ""

    def run(self, program, *args, **kw):
        return subprocess.run([find(program), *args], env=dict(self.env, **kw.pop("env", {})), capture_output=True,
                              text=True, timeout=kw.pop("timeout", 120), **kw)

    def job(self, job_id):
        """`scontrol show job` of one job (or array task, "123_4") as a dict of its fields."""
        text = self.output("scontrol", "show", "job", "--oneliner", str(job_id))
        fields = {}
        for item in text.split():
            key, _, value = item.partition("=")
            fields.setdefault(key, value)
        return fields

    def wait_for(self, condition, what, timeout):
        """Polls `condition` until it holds; fails naming `what`, with the daemons' logs, at the deadline."""
        deadline = time.monotonic() + timeout
        while not condition():
            for program, proc in self.daemons.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{program} exited ({proc.returncode}) while waiting for {what}\n{self.diagnostics()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{self.diagnostics()}")
            time.sleep(0.1)

    def wait_for_job(self, job_id, states, timeout=180):
        """Waits until a job's state is one of `states`; returns its fields."""
        self.wait_for(lambda: self.job(job_id).get("JobState") in states, f"job {job_id} to be {'/'.join(states)}", timeout)
        return self.job(job_id)
