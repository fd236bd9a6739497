/* Unit tests for src/provider/proxmox that need no server: error
 * formatting, UPID parsing, parameter encoding. The calls themselves are
 * exercised end to end against tests/labsim. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "provider/proxmox/proxmox.h"

static void
test_proxmox__error_uses_json_message_and_param_errors(void **state)
{
	struct err e = ERR_INIT;

	pve_error_from_response(&e, "POST", "/nodes/pve1/qemu", 400,
				"Parameter verification failed.",
				"{\"data\":null,\"message\":\"Parameter verification failed.\\n\","
				"\"errors\":{\"onboot\":\"type check ('boolean') failed - got 'true'\\n\"}}");
	assert_string_equal(e.msg, "POST /nodes/pve1/qemu: HTTP 400: Parameter verification "
				   "failed. (onboot: type check ('boolean') failed - got 'true')");
	assert_int_equal(e.code, ERR_FAIL);
}

static void
test_proxmox__error_falls_back_to_reason_phrase(void **state)
{
	struct err e = ERR_INIT;

	pve_error_from_response(&e, "POST", "/nodes/pve1/qemu/100/status/start", 500,
				"VM 100 already running", "{\"data\":null}");
	assert_string_equal(e.msg, "POST /nodes/pve1/qemu/100/status/start: HTTP 500: "
				   "VM 100 already running");
	pve_error_from_response(&e, "GET", "/version", 401, "No ticket", "");
	assert_string_equal(e.msg, "GET /version: HTTP 401: No ticket; check "
				   "proxmox.token_id and token_secret");
	assert_int_equal(e.code, ERR_FAIL);
}

static void
test_proxmox__upid_node(void **state)
{
	char *n = pve_upid_node("UPID:pve1:0003A1F2:01B2C3D4:66A0B1C2:qmcreate:100:root@pam!ci:");

	assert_string_equal(n, "pve1");
	free(n);
	assert_null(pve_upid_node("pve1:0003A1F2"));
	assert_null(pve_upid_node("UPID::x"));
	assert_null(pve_upid_node(NULL));
}

static void
test_proxmox__params_are_form_encoded(void **state)
{
	struct pve_params p;

	pve_params_init(&p);
	pve_params_addf(&p, "vmid", "%d", 1001);
	pve_params_add(&p, "net0", "virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=20");
	pve_params_add(&p, "tags", "strata-lab;talos");
	assert_string_equal(p.body.ptr, "vmid=1001&net0=virtio%3DBC%3A24%3A11%3A00%3A00%3A01"
					"%2Cbridge%3Dvmbr0%2Ctag%3D20&tags=strata-lab%3Btalos");
	pve_params_release(&p);
}

static void
test_proxmox__new_refuses_without_verification(void **state)
{
	struct pve_opts o = { 0 };
	struct pve *p = NULL;
	struct err e = ERR_INIT;

	o.endpoint = "https://127.0.0.1:8006";
	o.token_id = "root@pam!t";
	o.token_secret = "SECRET";
	assert_true(pve_new(&p, &o, &e) < 0);
	assert_null(p);
	assert_non_null(strstr(e.msg, "no way to verify the server"));
	assert_null(strstr(e.msg, "SECRET"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proxmox__error_uses_json_message_and_param_errors),
		cmocka_unit_test(test_proxmox__error_falls_back_to_reason_phrase),
		cmocka_unit_test(test_proxmox__upid_node),
		cmocka_unit_test(test_proxmox__params_are_form_encoded),
		cmocka_unit_test(test_proxmox__new_refuses_without_verification),
	};

	return cmocka_run_group_tests_name("proxmox", tests, NULL, NULL);
}
