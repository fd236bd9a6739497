/*
 * clock: monotonic milliseconds and an interruption-safe sleep, for
 * deadlines and backoff loops.
 */
#ifndef STRATA_UTIL_CLOCK_H
#define STRATA_UTIL_CLOCK_H

long long clock_mono_ms(void);
/* Sleep ms milliseconds (resumed after a signal handler runs). */
void clock_sleep_ms(long ms);
/* "90", "90s", "5m", "1h", "1m30s" → milliseconds; -1 when malformed. */
long long clock_parse_duration(const char *s);

#endif
