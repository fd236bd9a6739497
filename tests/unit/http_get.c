/*
 * One GET through util/http, for test_http cases that need their own
 * process: built twice, against the OpenSSL libcurl (http_get; run in a
 * mount namespace whose system CA store the test controls) and against
 * Debian's libcurl-gnutls (http_gnutls; strata's pin and CA checks live
 * in OpenSSL callbacks that GnuTLS would ignore, so it must refuse).
 *
 * usage: http_get URL pin FINGERPRINT | http_get URL ca FILE
 * Prints what happened; exits 0 when nothing was sent (refused), 1 when
 * a request went out, 2 on usage.
 */
#include <stdio.h>
#include <string.h>

#include "util/http.h"

int
main(int argc, char **argv)
{
	struct http_opts o = { 0 };
	struct http_client *c = NULL;
	struct http_response r;
	struct err e = ERR_INIT;
	int rc;

	if (argc != 4)
		return 2;
	o.base_url = argv[1];
	if (!strcmp(argv[2], "pin"))
		o.fingerprint = argv[3];
	else if (!strcmp(argv[2], "ca"))
		o.ca_file = argv[3];
	else
		return 2;
	o.auth_header = "Authorization: PVEAPIToken=u@pve!t=SECRET-VALUE";
	o.max_attempts = 1;
	if (http_client_new(&c, &o, &e) < 0) {
		printf("refused: %s (kind %s)\n", e.msg, err_kind_name(e.kind));
		return 0;
	}
	http_response_init(&r);
	rc = http_request(c, "GET", "/ok", NULL, NULL, 0, 0, &r, &e);
	if (rc < 0)
		printf("refused: %s (kind %s)\n", e.msg, err_kind_name(e.kind));
	else
		printf("sent: status %ld\n", r.status);
	http_response_release(&r);
	http_client_free(c);
	return rc < 0 && !err_outcome_unknown(&e) ? 0 : 1;
}
