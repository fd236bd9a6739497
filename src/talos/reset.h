/*
 * reset: the Talos Reset call (FACTS-day2.md §3, §4c), for a node strata
 * removes. graceful: Talos cordons and drains the node itself, and on a
 * control plane leaves etcd, before it wipes; reboot false powers it off
 * afterwards. Mode ALL with no partitions listed wipes the whole system
 * disk. The reset runs after the reply; the node then stops answering.
 */
#ifndef STRATA_TALOS_RESET_H
#define STRATA_TALOS_RESET_H

#include <stdbool.h>
#include <stddef.h>

#include "talos/api.h"
#include "util/err.h"

/*
 * labels: with n_labels > 0 only the system disk's volumes with these
 * labels are wiped (mode SYSTEM_DISK: "STATE", "EPHEMERAL"); with none,
 * mode ALL wipes the whole system disk.
 */
int talos_reset(const struct talos_target *t, bool graceful, bool reboot,
		const char *const *labels, size_t n_labels,
		struct talos_status *st, struct err *err);

#endif
