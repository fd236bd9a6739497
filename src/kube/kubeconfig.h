/*
 * kubeconfig: the admin kubeconfig Talos hands out. Talos's Kubeconfig
 * call streams a .tar.gz holding one file, `kubeconfig`;
 * kubeconfig_from_targz takes the concatenated stream bytes, inflates them
 * (zlib), finds that entry in the ustar archive, and rewrites every
 * cluster's `server:` to the given endpoint (the VIP), so the file works
 * from outside the cluster whatever address the node put in it.
 */
#ifndef STRATA_KUBE_KUBECONFIG_H
#define STRATA_KUBE_KUBECONFIG_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

int kubeconfig_from_targz(struct buf *out, const void *targz, size_t len,
			  const char *server, struct err *err);

/* Inflate gzip data (at most max bytes out). Exported for tests. */
int kube_gunzip(struct buf *out, const void *gz, size_t len, size_t max,
		struct err *err);
/* Find a regular file in a ustar/GNU tar archive. */
int kube_tar_find(const void *tar, size_t len, const char *name,
		  const void **data, size_t *size, struct err *err);
/* Set clusters[*].cluster.server in a kubeconfig YAML. */
int kubeconfig_set_server(struct buf *out, const char *yaml, size_t len,
			  const char *server, struct err *err);

#endif
