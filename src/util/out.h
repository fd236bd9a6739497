/*
 * out: the only writer of user-facing messages on stderr.
 * "error: ...", "warning: ...", "note: ..." with colour on a terminal
 * unless NO_COLOR is set. Plain results go to stdout through stdio.
 *
 * Messages often quote a peer (a gRPC grpc-message, a Proxmox reason
 * phrase, a Talos warning, a VM name read from Proxmox): control
 * characters in them are printed escaped (out_clean), so a peer cannot
 * move the cursor, recolour or clear the user's terminal.
 *
 * With an event sink registered (util/event.h, -o json), every message
 * is also an event: error, warning, note (out_note and out_step).
 */
#ifndef STRATA_UTIL_OUT_H
#define STRATA_UTIL_OUT_H

#include <stdbool.h>

void out_init(void);
bool out_color(void);
void out_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void out_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void out_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A progress/status line: "==> text" on stderr. */
void out_step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * A copy of s safe to print on a terminal: C0 controls other than newline
 * and tab, DEL, the C1 controls (U+0080..U+009F) and bytes that are not
 * UTF-8 become "\xHH"
 * (a backslash stays as it is), and a Proxmox task id
 * ("UPID:pve1:0003A1F2:01B2C3D4:66A0B1C2:qmcreate:100:root@pam!ci:")
 * reads "qmcreate 100 on pve1". The caller frees it. NULL for NULL.
 */
char *out_clean(const char *s);

#endif
