#include "trust/trust.h"

#include <stdlib.h>
#include <string.h>

const char *
trust_addr_name(enum trust_addr a)
{
	switch (a) {
	case TRUST_ADDR_CONFIG:
		return "the config";
	case TRUST_ADDR_AGENT:
		return "the Proxmox guest agent";
	default:
		return "an unverified source";
	}
}

int
trust_config_send(const struct trust_node *n, const char *addr, int port,
		  enum trust_addr src, enum trust_peer peer, struct err *err)
{
	if (peer == TRUST_PEER_CLUSTER)
		return 0;
	if (peer != TRUST_PEER_MAINTENANCE) {
		err_set(err, ERR_FAIL, "node '%s': refusing to send its machine "
			"config to %s:%d: the machine there proved nothing (not "
			"this cluster's certificate, not maintenance mode)",
			n->name, addr, port);
		return err_kind(err, ERRK_REFUSED, 0);
	}
	if (src != TRUST_ADDR_CONFIG && src != TRUST_ADDR_AGENT) {
		err_set(err, ERR_FAIL, "node '%s': refusing to send its machine "
			"config to %s:%d: that address came from %s, not from "
			"the config or the Proxmox guest agent", n->name, addr,
			port, trust_addr_name(src));
		return err_kind(err, ERRK_REFUSED, 0);
	}
	if (n->installed && !n->reinstall) {
		err_set(err, ERR_FAIL, "node '%s': refusing to send its machine "
			"config (it holds the cluster's keys) to %s:%d: the "
			"journal records this node as installed, yet the machine "
			"there answers as a fresh node in maintenance mode, with "
			"a certificate this cluster's CA did not sign. Another "
			"machine may hold the node's address. If you wiped or "
			"reset the node on purpose, run: strata apply %s "
			"--reinstall %s", n->name, addr, port,
			n->env_dir ? n->env_dir : "ENV", n->name);
		return err_kind(err, ERRK_REFUSED, 0);
	}
	return 0;
}

bool
trust_journal_installed(struct state *st, const char *node)
{
	char *v = state_talos_get(st, node, "installed");
	bool yes = v != NULL;

	free(v);
	if (!yes) {
		/* Journals from before "installed": fix_boot records "disk"
		 * only after the node answered over mTLS. */
		v = state_talos_get(st, node, "boot");
		yes = v && !strcmp(v, "disk");
		free(v);
	}
	return yes;
}

int
trust_journal_mark_installed(struct state *st, const char *node,
			     struct err *err)
{
	char *v = state_talos_get(st, node, "installed");
	int r = 0;

	if (!v)
		r = state_talos_set(st, node, "installed", "mtls", err);
	free(v);
	return r;
}

int
trust_http_send(const struct trust_http_peer *p, struct err *err)
{
	const char *what = p->secret ? p->secret : "a request";

	if (!p->openssl) {
		err_set(err, ERR_FAIL, "%s; refusing to send %s to %s",
			p->tls_error && p->tls_error[0] ? p->tls_error
			: "libcurl's TLS backend is not OpenSSL", what,
			p->host ? p->host : "the server");
		err_kind(err, ERRK_REFUSED, 0);
		return -1;
	}
	switch (p->tls) {
	case TRUST_TLS_PIN:
	case TRUST_TLS_CA:
	case TRUST_TLS_INSECURE:
		return 0;
	default:
		err_set(err, ERR_USAGE, "no way to verify the server %s, so %s "
			"would go to whoever answers: give a CA file, a "
			"fingerprint, or insecure", p->host ? p->host : "", what);
		err_kind(err, ERRK_REFUSED, 0);
		return -1;
	}
}
