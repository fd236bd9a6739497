/*
 * mac: MAC addresses strata chooses for the VMs it creates, so the
 * address is known (and journaled) before the create: a machine config
 * that selects its link by MAC can be written before the VM exists.
 *
 * The addresses are unicast and locally administered (first octet
 * x2, x6, xA or xE: bit 0 clear, bit 1 set), which Proxmox's net0
 * macaddr format accepts (FACTS.md §4: ^[a-f0-9][02468ace]...) and which
 * never clashes with a vendor's OUI such as Proxmox's own BC:24:11.
 */
#ifndef STRATA_PLAN_MAC_H
#define STRATA_PLAN_MAC_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

/* Fills b with n random bytes. */
typedef void (*mac_rand_fn)(void *ctx, unsigned char *b, size_t n);

/* The system's random source (getrandom). */
void mac_rand_system(void *ctx, unsigned char *b, size_t n);

/*
 * A fresh address into out[18] (upper case, colon-separated) that is none
 * of taken[0..n) (compared case-insensitively; NULL entries skipped).
 * Fails only when rnd keeps giving taken addresses.
 */
int mac_pick(char out[18], const char *const *taken, size_t n_taken,
	     mac_rand_fn rnd, void *ctx, struct err *err);

/* Unicast and locally administered? */
bool mac_is_local(const char *mac);

#endif
