#include "util/proc.h"

#include <errno.h>
#include <sys/prctl.h>
#include <sys/resource.h>

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
