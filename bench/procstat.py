#!/usr/bin/python3
"""procstat.py OUT CMD...: run CMD (stdout and stderr passed through),
sample its thread count every 10 ms; write "maxrss_kb=X threads=Y rc=Z" to
OUT. Exits with CMD's status."""
import resource
import subprocess
import sys
import time

out, cmd = sys.argv[1], sys.argv[2:]
p = subprocess.Popen(cmd)
threads = 0
while p.poll() is None:
    try:
        for line in open("/proc/%d/status" % p.pid):
            if line.startswith("Threads:"):
                threads = max(threads, int(line.split()[1]))
    except OSError:
        pass
    time.sleep(0.01)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(out, "w") as f:
    f.write("maxrss_kb=%d threads=%d rc=%d\n" % (rss, threads, p.returncode))
sys.exit(p.returncode)
