#include "util/proc.h"

#include <errno.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

volatile sig_atomic_t proc_interrupted;

bool
proc_sleep_ms(long ms)
{
	/* In slices: the signal may land on another thread, so this one's
	 * nanosleep is not always cut short. */
	while (ms > 0 && !proc_interrupted) {
		long slice = ms > 20 ? 20 : ms;
		struct timespec ts = { 0, slice * 1000000L };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !proc_interrupted)
			;
		ms -= slice;
	}
	return !proc_interrupted;
}

int
proc_protect_secrets(struct err *err)
{
	struct rlimit rl = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &rl) < 0)
		return err_sys(err, errno, "cannot turn core dumps off");
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return err_sys(err, errno, "cannot make the process non-dumpable");
	return 0;
}
