/* Unit tests for src/plan: ownership markers, tags, desired state from a
 * config, and the diff (create, update with drift, replace, delete,
 * conflict with a foreign VM). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "plan/observe.h"
#include "plan/plan.h"
#include "util/buf.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

static struct vm_spec
spec(const char *name, int vmid, const char *node, int cores, int mem, int disk)
{
	struct vm_spec s = { 0 };

	s.name = xstrdup(name);
	s.vmid = vmid;
	s.node = xstrdup(node);
	s.cores = cores;
	s.memory_mib = mem;
	s.disk_gib = disk;
	s.tags = plan_tags("lab", "worker");
	s.role = xstrdup("worker");
	return s;
}

static void
test_plan__tags_and_marker(void **state)
{
	char *t = plan_tags("lab", "controlplane");
	char *n = plan_normalise_tags("Talos, strata-lab;talos  b");

	assert_string_equal(t, "controlplane;strata-lab;talos");
	assert_string_equal(n, "b;strata-lab;talos");
	assert_true(plan_has_marker("talos node\nmanaged-by=strata env=lab\n", "lab"));
	assert_true(plan_has_marker("managed-by=strata env=lab", "lab"));
	assert_false(plan_has_marker("managed-by=strata env=lab2", "lab"));
	assert_false(plan_has_marker("x managed-by=strata env=lab", "lab"));
	assert_false(plan_has_marker(NULL, "lab"));
	free(t);
	free(n);
}

static void
test_plan__desired_from_config(void **state)
{
	struct config *cfg = NULL;
	struct diag d;
	struct vm_spec *v = NULL;
	size_t n = 0;
	struct err e = ERR_INIT;

	diag_init(&d, "config.yml");
	assert_int_equal(config_load_env(&cfg, SRCDIR "/examples/prod", &d), 0);
	assert_int_equal(plan_desired(cfg, &v, &n, &e), 0);
	assert_int_equal(n, 8);
	assert_string_equal(v[0].name, "prod-cp-1");
	assert_string_equal(v[0].tags, "controlplane;strata-prod;talos");
	assert_string_equal(v[7].tags, "strata-prod;talos;worker");
	assert_int_equal(v[7].vmid, 4007);
	assert_string_equal(v[1].node, "pve2");
	vm_specs_free(v, n);
	config_free(cfg);
	diag_release(&d);
}

static void
test_plan__diff_all_kinds(void **state)
{
	struct vm_spec want[4], have[5], applied[1];
	struct plan p;
	struct err e = ERR_INIT;
	char *js;
	json_t *root;

	want[0] = spec("w-1", 100, "pve1", 2, 4096, 32);  /* unchanged */
	want[1] = spec("w-2", 101, "pve1", 4, 8192, 64);  /* config change + drift */
	want[2] = spec("w-3", 102, "pve2", 2, 4096, 32);  /* create */
	want[3] = spec("w-4", 103, "pve1", 2, 4096, 32);  /* conflict */
	have[0] = spec("w-1", 100, "pve1", 2, 4096, 32);
	have[1] = spec("w-2", 101, "pve1", 2, 2048, 32);
	have[2] = spec("grafana", 103, "pve1", 2, 4096, 32);
	have[3] = spec("w-9", 109, "pve1", 2, 4096, 32);  /* owned, gone: delete */
	have[4] = spec("other", 200, "pve1", 2, 4096, 32); /* foreign, not ours */
	have[0].owned = have[1].owned = have[3].owned = true;
	have[2].foreign_why = xstrdup("no strata-lab tag");
	have[4].foreign_why = xstrdup("outside the VM id range");
	/* last apply: cores 4 (so cores 2 live is drift), memory 4096 (so
	 * 8192 is a config change) */
	applied[0] = spec("w-2", 101, "pve1", 4, 4096, 32);

	assert_int_equal(plan_diff(&p, "lab", want, 4, have, 5, applied, 1, &e), 0);
	assert_int_equal(p.unchanged, 1);
	assert_int_equal(p.updates, 1);
	assert_int_equal(p.creates, 1);
	assert_int_equal(p.conflicts, 1);
	assert_int_equal(p.deletes, 1);
	assert_int_equal(p.replaces, 0);
	assert_int_equal(p.v[1].kind, ACT_UPDATE);
	assert_int_equal(p.v[1].n_ch, 3);
	assert_string_equal(p.v[1].ch[0].field, "cores");
	assert_true(p.v[1].ch[0].drift);
	assert_string_equal(p.v[1].ch[1].field, "memory");
	assert_false(p.v[1].ch[1].drift);
	assert_string_equal(p.v[1].ch[1].from, "2048 MiB");
	assert_string_equal(p.v[1].ch[2].field, "disk");
	assert_int_equal(p.v[3].kind, ACT_CONFLICT);
	assert_non_null(strstr(p.v[3].reason, "held by 'grafana' on pve1, which strata does not own"));
	assert_int_equal(p.v[4].kind, ACT_DELETE);
	assert_int_equal(p.v[4].have.vmid, 109);

	js = plan_to_json(&p);
	root = json_loads(js, 0, NULL);
	assert_non_null(root);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(root, "summary"), "delete")), 1);
	assert_string_equal(json_string_value(json_object_get(
		json_array_get(json_object_get(root, "actions"), 2), "action")), "create");
	{
		/* typed values: sizes are numbers with a unit */
		json_t *ch = json_object_get(json_array_get(json_object_get(root,
					     "actions"), 1), "changes");
		json_t *mem = json_array_get(ch, 1);

		assert_int_equal(json_integer_value(json_object_get(root, "format_version")), 2);
		assert_true(json_is_integer(json_object_get(mem, "from")));
		assert_int_equal(json_integer_value(json_object_get(mem, "from")), 2048);
		assert_int_equal(json_integer_value(json_object_get(mem, "to")), 8192);
		assert_string_equal(json_string_value(json_object_get(mem, "unit")), "MiB");
		assert_int_equal(json_integer_value(json_object_get(json_array_get(ch, 0), "from")), 2);
		assert_true(json_is_null(json_object_get(json_array_get(ch, 0), "unit")));
	}
	json_decref(root);
	free(js);
	plan_release(&p);
	vm_specs_free(NULL, 0);
	for (int i = 0; i < 4; i++)
		vm_spec_release(&want[i]);
	for (int i = 0; i < 5; i++)
		vm_spec_release(&have[i]);
	vm_spec_release(&applied[0]);
}

static void
test_plan__replace_on_move_or_shrink(void **state)
{
	struct vm_spec want[2], have[2];
	struct plan p;
	struct err e = ERR_INIT;
	FILE *out;
	char *text = NULL;
	size_t len = 0;

	want[0] = spec("w-1", 100, "pve2", 2, 4096, 32);
	want[1] = spec("w-2", 101, "pve1", 2, 4096, 16);
	have[0] = spec("w-1", 100, "pve1", 2, 4096, 32);
	have[1] = spec("w-2", 101, "pve1", 2, 4096, 32);
	have[0].owned = have[1].owned = true;
	assert_int_equal(plan_diff(&p, "lab", want, 2, have, 2, NULL, 0, &e), 0);
	assert_int_equal(p.replaces, 2);
	assert_string_equal(p.v[0].reason, "placement pve1 -> pve2 needs a new VM");
	assert_string_equal(p.v[1].reason, "disk cannot shrink (32 -> 16 GiB)");
	out = open_memstream(&text, &len);
	plan_print(&p, out, false);
	fclose(out);
	assert_non_null(strstr(text, "Plan: 0 to create, 0 to update, 2 to replace, 0 to delete, 0 unchanged."));
	free(text);
	plan_release(&p);
	for (int i = 0; i < 2; i++) {
		vm_spec_release(&want[i]);
		vm_spec_release(&have[i]);
	}
}

static void
test_plan__ids_stick_to_names(void **state)
{
	struct vm_spec want[4], applied[3];
	struct err e = ERR_INIT;
	int i;

	/* Config order gave provisional ids 100..103; the journal knows w-1
	 * as 102 and w-2 as 103 from when there was one more control plane
	 * (cp-2, id 101, now gone). */
	want[0] = spec("cp-1", 100, "pve1", 2, 4096, 32);
	want[1] = spec("w-1", 101, "pve1", 2, 4096, 32);
	want[2] = spec("w-2", 102, "pve1", 2, 4096, 32);
	want[3] = spec("w-3", 103, "pve1", 2, 4096, 32);  /* new */
	applied[0] = spec("cp-1", 100, "pve1", 2, 4096, 32);
	applied[1] = spec("w-1", 102, "pve1", 2, 4096, 32);
	applied[2] = spec("w-2", 103, "pve1", 2, 4096, 32);
	assert_int_equal(plan_stick_ids(want, 4, applied, 3, 100, 10, &e), 0);
	assert_int_equal(want[0].vmid, 100);
	assert_int_equal(want[1].vmid, 102);
	assert_int_equal(want[2].vmid, 103);
	assert_int_equal(want[3].vmid, 101);   /* lowest id nobody holds */
	/* A fixed id wins over the journal; a full range is an error. */
	want[1].vmid = 109;
	want[1].vmid_fixed = true;
	assert_int_equal(plan_stick_ids(want, 4, applied, 3, 100, 10, &e), 0);
	assert_int_equal(want[1].vmid, 109);
	assert_true(plan_stick_ids(want, 4, applied, 3, 100, 3, &e) < 0);
	assert_non_null(strstr(e.msg, "is full"));
	for (i = 0; i < 4; i++)
		vm_spec_release(&want[i]);
	for (i = 0; i < 3; i++)
		vm_spec_release(&applied[i]);
}

/* Running VMs: cores/memory changes need a restart; a value Proxmox holds
 * pending already is not sent again; stopped VMs need no restart; pending
 * values come from GET .../pending. */
static void
test_plan__pending_and_restart(void **state)
{
	struct vm_spec want[3], have[3];
	struct plan p;
	struct err e = ERR_INIT;
	FILE *out;
	char *text = NULL;
	size_t len = 0;
	json_t *pend;
	int i;

	(void)state;
	want[0] = spec("w-1", 100, "pve1", 2, 16384, 32);
	want[1] = spec("w-2", 101, "pve1", 4, 4096, 32);
	want[2] = spec("w-3", 102, "pve1", 2, 8192, 32);
	for (i = 0; i < 3; i++) {
		have[i] = spec(want[i].name, want[i].vmid, "pve1", 2, 4096, 32);
		have[i].owned = true;
		have[i].status = xstrdup(i == 2 ? "stopped" : "running");
	}
	have[0].memory_mib = 8192;
	/* w-2: GET config shows cores 4 (merged); .../pending says 2 runs */
	pend = json_loads("[{\"key\":\"cores\",\"value\":\"2\",\"pending\":\"4\"},"
			  "{\"key\":\"memory\",\"value\":\"current=4096\"}]", 0, NULL);
	have[1].cores = 4;
	assert_int_equal(observe_pending(&have[1], pend, &e), 0);
	json_decref(pend);
	assert_int_equal(have[1].cores, 2);
	assert_int_equal(have[1].pending_cores, 4);
	assert_int_equal(have[1].memory_mib, 4096);
	assert_int_equal(have[1].pending_memory_mib, 0);

	assert_int_equal(plan_diff(&p, "lab", want, 3, have, 3, NULL, 0, &e), 0);
	assert_int_equal(p.updates, 3);
	assert_int_equal(p.restarts, 2);
	assert_true(p.v[0].ch[0].restart);
	assert_false(p.v[0].ch[0].pending);
	assert_true(p.v[1].ch[0].restart);
	assert_true(p.v[1].ch[0].pending);
	assert_false(p.v[2].restart);              /* stopped: the start applies it */
	out = open_memstream(&text, &len);
	plan_print(&p, out, false);
	fclose(out);
	assert_non_null(strstr(text, "memory   8192 MiB -> 16384 MiB, needs restart\n"));
	assert_non_null(strstr(text, "cores    2 -> 4, needs restart (pending in Proxmox)\n"));
	assert_non_null(strstr(text, "memory   4096 MiB -> 8192 MiB\n"));
	assert_non_null(strstr(text, "2 VMs need a restart for changes to take effect: apply restarts them one at a time"));
	free(text);
	text = plan_to_json(&p);
	assert_non_null(strstr(text, "\"restart\": 2"));
	free(text);
	plan_release(&p);
	for (i = 0; i < 3; i++) {
		vm_spec_release(&want[i]);
		vm_spec_release(&have[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan__tags_and_marker),
		cmocka_unit_test(test_plan__desired_from_config),
		cmocka_unit_test(test_plan__diff_all_kinds),
		cmocka_unit_test(test_plan__replace_on_move_or_shrink),
		cmocka_unit_test(test_plan__ids_stick_to_names),
		cmocka_unit_test(test_plan__pending_and_restart),
	};

	return cmocka_run_group_tests_name("plan", tests, NULL, NULL);
}
