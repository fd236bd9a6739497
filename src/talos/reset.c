#include "talos/reset.h"

#include <stdlib.h>

#include "machine.pb-c.h"
#include "util/grpc.h"

int
talos_reset(const struct talos_target *t, bool graceful, bool reboot,
	    struct talos_status *st, struct err *err)
{
	Machine__ResetRequest req = MACHINE__RESET_REQUEST__INIT;
	Machine__ResetResponse *resp;
	struct talos_status local;
	struct grpc_result res;
	unsigned char wire[32];
	size_t n, i;
	int r;

	if (!st)
		st = &local;
	req.graceful = graceful;
	req.reboot = reboot;
	req.mode = MACHINE__RESET_REQUEST__WIPE_MODE__ALL;
	n = machine__reset_request__pack(&req, wire);
	if ((r = talos_call(t, "Reset", wire, n, &res, st, err)) < 0)
		goto out;
	if (res.n_msgs != 1 || !(resp = machine__reset_response__unpack(
			NULL, res.msgs[0].len, (const uint8_t *)res.msgs[0].ptr))) {
		r = err_set(err, ERR_FAIL, "Reset on %s: the reply is not a "
			    "ResetResponse; is this a Talos node?", t->addr);
		goto out;
	}
	for (i = 0; i < resp->n_messages && r == 0; i++)
		r = talos_check_meta(resp->messages[i]->metadata, "Reset", t, st, err);
	machine__reset_response__free_unpacked(resp, NULL);
out:
	grpc_result_release(&res);
	return r;
}
