/* utf8.h - making text that quotes a client's bytes safe to send back.
 *
 * Refusal messages go into JSON bodies and WebSocket text frames, which
 * must be UTF-8, yet they quote what the client sent: jansson's error text
 * for an escaped non-ASCII character ends with its first byte only
 * ("invalid escape near '"\xc3'"), and a cut at a length limit ("%.64s")
 * may split a character. */
#ifndef HOLDFAST_UTF8_H
#define HOLDFAST_UTF8_H

/* Replaces, in place, every byte that does not start a well-formed UTF-8
 * sequence (as strict as jansson: no overlong forms, surrogates or code
 * points above U+10FFFF) with '?'. s is NUL-terminated. */
void hf_utf8_scrub(char *s);

#endif
