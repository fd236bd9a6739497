#!/usr/bin/python3
"""measure.py CMD...: run CMD, print "wall_s=X maxrss_kb=Y rc=Z" on stderr."""
import resource
import subprocess
import sys
import time

t0 = time.monotonic()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.monotonic() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stderr.write("wall_s=%.4f maxrss_kb=%d rc=%d\n" % (wall, rss, rc))
sys.exit(rc)
