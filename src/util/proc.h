/*
 * proc: process-wide state: the interruption flag, and protections for
 * commands that load secrets.
 *
 * proc_interrupted is set by the SIGINT/SIGTERM handler (phase.c). Every
 * long wait checks it: proc_sleep_ms returns early, the HTTP and gRPC
 * transfers abort from their progress callback, the Proxmox task wait and
 * the Talos waits stop with ERR_INTR.
 *
 * proc_protect_secrets turns core dumps off (RLIMIT_CORE 0) and makes the
 * process non-dumpable (PR_SET_DUMPABLE 0: no core file, no ptrace attach
 * or /proc/PID/mem read by other processes of the same user), so a crash
 * (oom() aborts) or a curious process never gets the CA keys and tokens
 * the process holds in memory. Called before any secret is read.
 */
#ifndef STRATA_UTIL_PROC_H
#define STRATA_UTIL_PROC_H

#include <signal.h>
#include <stdbool.h>

#include "util/err.h"

extern volatile sig_atomic_t proc_interrupted;
/* Sleep ms milliseconds; false (at once, or within 20 ms) when interrupted. */
bool proc_sleep_ms(long ms);

int proc_protect_secrets(struct err *err);

#endif
