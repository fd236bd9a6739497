/*
 * One etcd call of src/talos/etcd through a talosconfig, for e2e t102
 * (the membership calls strata's scale-down and upgrades use).
 *
 * usage: etcd_call TALOSCONFIG ADDR members|status|leave|forfeit|remove ID
 * Prints the result (members: "ID NAME learner|voter" lines); exits 0 when
 * the call succeeded, 1 when it failed (the error on stdout), 2 on usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "talos/etcd.h"

int
main(int argc, char **argv)
{
	struct talos_creds creds;
	struct talos_target t = { 0 };
	struct talos_status st = { 0 };
	struct err e = ERR_INIT;
	char hex[17];
	int r = -1;

	if (argc < 4)
		return 2;
	if (talos_creds_load(&creds, argv[1], &e) < 0) {
		printf("error: %s\n", e.msg);
		return 1;
	}
	t.addr = argv[2];
	t.creds = &creds;
	if (!strcmp(argv[3], "members")) {
		struct etcd_members ms;
		size_t i;

		if ((r = talos_etcd_members(&t, false, &ms, &st, &e)) == 0) {
			for (i = 0; i < ms.n; i++) {
				etcd_member_id_format(ms.v[i].id, hex);
				printf("%s %s %s\n", hex, ms.v[i].hostname,
				       ms.v[i].learner ? "learner" : "voter");
			}
			etcd_members_release(&ms);
		}
	} else if (!strcmp(argv[3], "status")) {
		struct etcd_status s;

		if ((r = talos_etcd_status(&t, &s, &st, &e)) == 0) {
			etcd_member_id_format(s.member_id, hex);
			printf("member %s", hex);
			etcd_member_id_format(s.leader, hex);
			printf(" leader %s version %s db %lld\n", hex,
			       s.protocol_version, (long long)s.db_size);
			etcd_status_release(&s);
		}
	} else if (!strcmp(argv[3], "leave")) {
		if ((r = talos_etcd_leave(&t, &st, &e)) == 0)
			printf("left\n");
	} else if (!strcmp(argv[3], "forfeit")) {
		char *lead = NULL;

		if ((r = talos_etcd_forfeit_leadership(&t, &lead, &st, &e)) == 0)
			printf("new leader '%s'\n", lead);
		free(lead);
	} else if (!strcmp(argv[3], "remove") && argc == 5) {
		uint64_t id;
		bool gone = false;

		if ((r = etcd_member_id_parse(argv[4], &id, &e)) == 0 &&
		    (r = talos_etcd_remove_member(&t, id, &gone, &st, &e)) == 0)
			printf(gone ? "already gone\n" : "removed\n");
	} else {
		talos_creds_release(&creds);
		return 2;
	}
	if (r < 0)
		printf("error: %s\n", e.msg);
	talos_creds_release(&creds);
	return r < 0 ? 1 : 0;
}
