#!/bin/sh
# Run the lab simulator's own tests; last line: "N passed, N failed, N skipped".
cd "$(dirname "$0")" || exit 2
exec /usr/bin/python3 - "$@" <<'PY'
import sys, unittest
sys.path.insert(0, ".")
suite = unittest.defaultTestLoader.discover(".", pattern="test_*.py")
r = unittest.TextTestRunner(verbosity=1, stream=sys.stderr).run(suite)
failed = len(r.failures) + len(r.errors) + len(r.unexpectedSuccesses)
skipped = len(r.skipped)
passed = r.testsRun - failed - skipped
for t, why in r.skipped:
    print("skipped %s: %s" % (t.id(), why))
print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed else 0)
PY
