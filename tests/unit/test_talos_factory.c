/* Schematic ids must reproduce the upstream ids listed in FACTS.md f. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "talos/factory.h"

static void
check(const char *const *args, size_t na, const char *const *ext, size_t ne,
      const char *want)
{
	struct schematic s = { args, na, ext, ne };
	struct err err = ERR_INIT;
	char id[65];

	assert_int_equal(talos_schematic_id(id, &s, &err), 0);
	if (strlen(want) < 64)
		assert_memory_equal(id, want, strlen(want));
	else
		assert_string_equal(id, want);
}

static void
test_factory__upstream_ids(void **state)
{
	static const char *const karg[] = { "noapic", "nolapic" };
	static const char *const e1[] = { "siderolabs/iscsi-tools", "siderolabs/util-linux-tools" };
	static const char *const e2[] = { "siderolabs/qemu-guest-agent" };
	static const char *const e3[] = { "siderolabs/iscsi-tools", "siderolabs/qemu-guest-agent",
					  "siderolabs/util-linux-tools" };

	(void)state;
	check(NULL, 0, NULL, 0, "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba");
	check(karg, 2, NULL, 0, "9cba8e32");
	check(NULL, 0, e1, 2, "613e1592b2da41ae5e265e8789429f22e121aab91cb4deb6bc3c0b6262961245");
	check(NULL, 0, e2, 1, "ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515");
	check(NULL, 0, e3, 3, "88d1f7a5c4f1d3aba7df787c448c1d3d008ed29cfb34af53fa0df4336a56040b");
}

static void
test_factory__order_kept_and_quoting_refused(void **state)
{
	static const char *const ab[] = { "siderolabs/util-linux-tools", "siderolabs/iscsi-tools" };
	static const char *const bad[] = { "a: b" };
	struct schematic s = { NULL, 0, ab, 2 };
	struct err err = ERR_INIT;
	char id[65];

	(void)state;
	assert_int_equal(talos_schematic_id(id, &s, &err), 0);
	assert_string_not_equal(id, "613e1592b2da41ae5e265e8789429f22e121aab91cb4deb6bc3c0b6262961245");
	s.kernel_args = bad;
	s.n_kernel_args = 1;
	assert_true(talos_schematic_id(id, &s, &err) < 0);
}

static void
test_factory__urls(void **state)
{
	char *u;

	(void)state;
	u = talos_factory_iso_url(NULL, "abc", "v1.12.11", "nocloud");
	assert_string_equal(u, "https://factory.talos.dev/image/abc/v1.12.11/nocloud-amd64.iso");
	free(u);
	u = talos_factory_iso_url("http://127.0.0.1:8080/", "abc", "v1.12.11", "metal");
	assert_string_equal(u, "http://127.0.0.1:8080/image/abc/v1.12.11/metal-amd64.iso");
	free(u);
	u = talos_factory_installer("abc", "v1.12.11", "metal");
	assert_string_equal(u, "factory.talos.dev/metal-installer/abc:v1.12.11");
	free(u);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_factory__upstream_ids),
		cmocka_unit_test(test_factory__order_kept_and_quoting_refused),
		cmocka_unit_test(test_factory__urls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
