/*
 * proc: process-wide protections for commands that load secrets.
 *
 * proc_protect_secrets turns core dumps off (RLIMIT_CORE 0) and makes the
 * process non-dumpable (PR_SET_DUMPABLE 0: no core file, no ptrace attach
 * or /proc/PID/mem read by other processes of the same user), so a crash
 * (oom() aborts) or a curious process never gets the CA keys and tokens
 * the process holds in memory. Called before any secret is read.
 */
#ifndef STRATA_UTIL_PROC_H
#define STRATA_UTIL_PROC_H

#include "util/err.h"

int proc_protect_secrets(struct err *err);

#endif
