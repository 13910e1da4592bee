/* clock.h - the project's readings of the clocks, in microseconds.
 *
 * hf_now_us() is CLOCK_MONOTONIC: for timeouts, deadlines and durations.
 * hf_wall_us() is CLOCK_REALTIME: Unix time, for what is compared across
 * processes and machines (event timestamps, latency, server time). A
 * caller that wants milliseconds divides. Thread-safe. */
#ifndef HOLDFAST_CLOCK_H
#define HOLDFAST_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC, in microseconds. */
int64_t hf_now_us(void);
/* CLOCK_REALTIME: microseconds since the Unix epoch. */
int64_t hf_wall_us(void);
/* CLOCK_MONOTONIC, in nanoseconds (the load generators and the fault proxy). */
int64_t hf_now_ns(void);
/* The CLOCK_REALTIME instant ms milliseconds from now: the deadline
 * pthread_cond_timedwait takes (its condition variables use that clock). */
struct timespec hf_wall_deadline(int64_t ms);

#endif
