#include "talos/reset.h"

#include <stdlib.h>

#include "machine.pb-c.h"
#include "util/buf.h"
#include "util/grpc.h"

int
talos_reset(const struct talos_target *t, bool graceful, bool reboot,
	    const char *const *labels, size_t n_labels,
	    struct talos_status *st, struct err *err)
{
	Machine__ResetRequest req = MACHINE__RESET_REQUEST__INIT;
	Machine__ResetPartitionSpec *specs, **ps;
	Machine__ResetResponse *resp;
	struct talos_status local;
	struct grpc_result res;
	unsigned char *wire;
	size_t n, i;
	int r;

	if (!st)
		st = &local;
	specs = xcalloc(n_labels + 1, sizeof(*specs));
	ps = xcalloc(n_labels + 1, sizeof(*ps));
	for (i = 0; i < n_labels; i++) {
		machine__reset_partition_spec__init(&specs[i]);
		specs[i].label = (char *)labels[i];
		specs[i].wipe = true;
		ps[i] = &specs[i];
	}
	req.graceful = graceful;
	req.reboot = reboot;
	req.mode = n_labels ? MACHINE__RESET_REQUEST__WIPE_MODE__SYSTEM_DISK
			    : MACHINE__RESET_REQUEST__WIPE_MODE__ALL;
	req.n_system_partitions_to_wipe = n_labels;
	req.system_partitions_to_wipe = n_labels ? ps : NULL;
	n = machine__reset_request__get_packed_size(&req);
	wire = xmalloc(n ? n : 1);
	machine__reset_request__pack(&req, wire);
	free(ps);
	free(specs);
	r = talos_call(t, "Reset", wire, n, &res, st, err);
	free(wire);
	if (r < 0)
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
