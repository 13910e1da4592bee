/* lws_log.h - libwebsockets' own log lines, routed into holdfast's log.
 *
 * lws reports errors and warnings through a process-wide callback; this
 * module owns that callback: each line becomes one hf_log record at the
 * same level, prefixed "lws: ". */
#ifndef HOLDFAST_LWS_LOG_H
#define HOLDFAST_LWS_LOG_H

/* Sends lws' errors and warnings (nothing below) to hf_log. Lines that
 * contain mute (NULL: none) are dropped. Call at start, before the lws
 * context exists and before threads; mute must outlive the process's use
 * of lws (a string literal). */
void hf_lws_log_init(const char *mute);

#endif
