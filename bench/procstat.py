#!/usr/bin/python3
"""procstat.py OUT CMD...: run CMD (stdout and stderr passed through),
sample its thread count and resident size every 10 ms; write "maxrss_kb=X
threads=Y rc=Z" to OUT and the samples ("epoch-seconds rss_kb threads",
one a line) to OUT.samples, so a bench can take the peak over part of the
run. Exits with CMD's status."""
import resource
import subprocess
import sys
import time

out, cmd = sys.argv[1], sys.argv[2:]
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
        samples.append("%.3f %d %d" % (time.time(), rss, th))
    except (OSError, ValueError):
        pass
    time.sleep(0.01)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(out, "w") as f:
    f.write("maxrss_kb=%d threads=%d rc=%d\n" % (rss, threads, p.returncode))
with open(out + ".samples", "w") as f:
    f.write("\n".join(samples) + "\n")
sys.exit(p.returncode)
