#!/usr/bin/python3
"""procstat.py OUT CMD...: run CMD (stdout and stderr passed through),
sample its thread count, resident size and CPU every 10 ms; write
"maxrss_kb=X threads=Y rc=Z cpu=S" (S: its CPU seconds, user and system)
to OUT and the samples ("epoch-seconds rss_kb threads cpu_ticks
other_cpu_ticks", one a line; other: the process PROCSTAT_OTHER names,
such as the simulator, or 0) to OUT.samples, so a bench can take the
peak or the CPU over part of the run. Exits with CMD's status."""
import os
import resource
import subprocess
import sys
import time

out, cmd = sys.argv[1], sys.argv[2:]
other = os.environ.get("PROCSTAT_OTHER")


def ticks(pid):
    """utime + stime of pid, in clock ticks (0 if gone)"""
    try:
        f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])
    except (OSError, ValueError, IndexError):
        return 0


p = subprocess.Popen(cmd)
threads = 0
samples = []
while p.poll() is None:
    try:
        rss = th = 0
        for line in open("/proc/%d/status" % p.pid):
            if line.startswith("Threads:"):
                th = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        threads = max(threads, th)
        samples.append("%.3f %d %d %d %d" % (time.time(), rss, th, ticks(p.pid),
                                             ticks(other) if other else 0))
    except (OSError, ValueError):
        pass
    time.sleep(0.01)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as f:
    f.write("maxrss_kb=%d threads=%d rc=%d cpu=%.2f\n" % (ru.ru_maxrss, threads, p.returncode,
                                                        ru.ru_utime + ru.ru_stime))
with open(out + ".samples", "w") as f:
    f.write("\n".join(samples) + "\n")
sys.exit(p.returncode)
