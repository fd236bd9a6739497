/*
 * memscan: a test mode that proves secrets leave no copy in memory.
 *
 * With STRATA_TEST_MEMSCAN set to comma-separated hex strings (the bytes
 * of secret values, e.g. a CA key's base64 as in secrets.yaml), main calls
 * memscan_at_exit after the command: it reads every private writable
 * mapping of the process (heap, freed memory in malloc's or ASan's free
 * lists, thread stacks; not ASan's shadow) through /proc/self/mem and
 * reports each place one of the values occurs, live or freed. Under ASan
 * it also describes the allocation (where it was allocated and freed).
 * The values are kept XORed while searching, so the scanner itself holds
 * no copy. Returns the exit status: status unchanged when nothing was
 * found, 125 otherwise.
 */
#ifndef STRATA_UTIL_MEMSCAN_H
#define STRATA_UTIL_MEMSCAN_H

int memscan_at_exit(int status);

#endif
