/* out: peer text printed escaped; event: the typed stream and its sinks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/event.h"
#include "util/out.h"

/* Run fn with stderr sent to a file; return what it printed. */
static char *
capture_stderr(void (*fn)(void))
{
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);
	char *text;
	long n;

	assert_non_null(tmp);
	fflush(stderr);
	dup2(fileno(tmp), STDERR_FILENO);
	fn();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = ftell(tmp);
	text = calloc(1, (size_t)n + 1);
	rewind(tmp);
	assert_int_equal(fread(text, 1, (size_t)n, tmp), (size_t)n);
	fclose(tmp);
	return text;
}

/* What a hostile peer could send in a grpc-message or reason phrase. */
static const char peer[] = "bad request\033[2J\033]0;owned\007\r\x9b" "1m\xc2\x9b" "31m end";

static void
print_peer_error(void)
{
	out_error("apply 'lab': node 'cp-1': rpc ApplyConfiguration: %s", peer);
}

static void
test_out__peer_escape_sequences_print_escaped(void **state)
{
	char *got = capture_stderr(print_peer_error);

	(void)state;
	assert_string_equal(got, "error: apply 'lab': node 'cp-1': rpc "
			    "ApplyConfiguration: bad request\\x1b[2J\\x1b]0;owned"
			    "\\x07\\x0d\\x9b1m\\x9b31m end\n");
	assert_null(strchr(got, '\033'));
	free(got);
}

static void
test_out__clean_keeps_text_and_reads_task_ids(void **state)
{
	char *s;

	(void)state;
	s = out_clean("tab\tand\nnewline, ünïcode, back\\slash");
	assert_string_equal(s, "tab\tand\nnewline, ünïcode, back\\slash");
	free(s);
	s = out_clean("task UPID:pve1:0003A1F2:01B2C3D4:66A0B1C2:qmcreate:1000:root@pam!ci: failed: boom");
	assert_string_equal(s, "task qmcreate 1000 on pve1 failed: boom");
	free(s);
	s = out_clean("UPID:pve1:short");
	assert_string_equal(s, "UPID:pve1:short");
	free(s);
	assert_null(out_clean(NULL));
}

static json_t *seen;

static void
collect(const json_t *ev, void *arg)
{
	(void)arg;
	json_array_append_new(seen, json_deep_copy(ev));
}

static const char *
type_of(size_t i)
{
	return json_string_value(json_object_get(json_array_get(seen, i), "type"));
}

static void
test_event__stream_is_typed_ordered_and_ends_with_summary(void **state)
{
	json_t *ev;
	size_t i;

	(void)state;
	seen = json_array();
	event_step("before", "running", "no sink: dropped");
	event_sink_add(collect, NULL);
	event_begin("apply", "lab");
	event_phase_start("vms", "create, update and delete VMs");
	event_step("lab-cp-1", "running", "creating vmid 1000 on pve1");
	event_step("lab-cp-1", "ok", "created");
	out_warn("insecure TLS");
	event_phase_end("vms", "done", NULL);
	event_step("lab-w-1", "failed", "outside a phase");
	event_summary(json_pack("{s:s, s:i}", "result", "done", "exit_code", 0));
	event_end();
	event_step("after", "running", "sinks dropped");

	assert_int_equal(json_array_size(seen), 8);
	assert_string_equal(type_of(0), "start");
	assert_string_equal(type_of(1), "phase_start");
	assert_string_equal(type_of(2), "step");
	assert_string_equal(type_of(4), "warning");
	assert_string_equal(type_of(5), "phase_end");
	assert_string_equal(type_of(7), "summary");
	for (i = 0; i < json_array_size(seen); i++) {
		ev = json_array_get(seen, i);
		assert_int_equal(json_integer_value(json_object_get(ev, "seq")), i + 1);
		assert_int_equal(strlen(json_string_value(json_object_get(ev, "time"))), 24);
	}
	ev = json_array_get(seen, 2);
	assert_string_equal(json_string_value(json_object_get(ev, "phase")), "vms");
	assert_string_equal(json_string_value(json_object_get(ev, "item")), "lab-cp-1");
	assert_string_equal(json_string_value(json_object_get(ev, "state")), "running");
	assert_true(json_is_null(json_object_get(json_array_get(seen, 6), "phase")));
	assert_true(json_is_real(json_object_get(json_array_get(seen, 5), "elapsed_s")));
	assert_true(json_is_null(json_object_get(json_array_get(seen, 5), "error")));
	ev = json_array_get(seen, 7);
	assert_true(json_is_number(json_object_get(ev, "elapsed_s")));
	assert_int_equal(json_integer_value(json_object_get(ev, "exit_code")), 0);
	json_decref(seen);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_out__peer_escape_sequences_print_escaped),
		cmocka_unit_test(test_out__clean_keeps_text_and_reads_task_ids),
		cmocka_unit_test(test_event__stream_is_typed_ordered_and_ends_with_summary),
	};

	return cmocka_run_group_tests_name("out", tests, NULL, NULL);
}
