/*
 * One /test.T/Echo call through util/grpc, for test_grpc's case that runs
 * in a mount namespace whose system CA store the test controls.
 *
 * usage: grpc_get TARGET CAFILE
 * Prints what happened; exits 0 when refused before sending, 1 when the
 * call went through, 2 on usage.
 */
#include <stdio.h>
#include <stdlib.h>

#include "util/grpc.h"

int
main(int argc, char **argv)
{
	struct grpc_opts o = { 0 };
	struct grpc_result r;
	struct err e = ERR_INIT;
	struct buf ca = BUF_INIT;
	char chunk[4096];
	size_t k;
	FILE *f;
	int rc;

	if (argc != 3 || !(f = fopen(argv[2], "r")))
		return 2;
	while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&ca, chunk, k);
	fclose(f);
	buf_add(&ca, "", 1);
	o.target = argv[1];
	o.ca_pem = ca.ptr;
	grpc_result_init(&r);
	rc = grpc_call(&o, "/test.T/Echo", "x", 1, &r, &e);
	if (rc < 0)
		printf("refused: %s (kind %s)\n", e.msg, err_kind_name(e.kind));
	else
		printf("sent: status %d\n", r.status);
	grpc_result_release(&r);
	buf_release(&ca);
	return rc < 0 && e.kind == ERRK_TLS_TRUST ? 0 : 1;
}
