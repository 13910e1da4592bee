/* inbox.h - what the Redis and Kafka threads hand to the lws thread.
 *
 * Owns a FIFO of gw_msg_t under a mutex, its byte count, and the wake-up
 * of the lws thread (lws_cancel_service, once per batch). Messages from
 * one producer thread arrive in the order it pushed them, which the
 * channel logic relies on (a scan's answer comes after the records read
 * before it).
 *
 * Ownership: a pushed message belongs to the inbox; gw_inbox_take() hands
 * the whole batch to the caller, who frees each with gw_msg_free(). A
 * message's descriptor is closed with it unless taken (fd set to -1). */
#ifndef HOLDFAST_GW_INBOX_H
#define HOLDFAST_GW_INBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lws_context;

typedef enum gw_msg_kind {
    GW_MSG_REDIS_UP,         /* connected (subscriptions follow) */
    GW_MSG_REDIS_DOWN,       /* lost, frozen or cut: nothing more comes from Redis until UP */
    GW_MSG_REDIS_SUSPECT,    /* silent too long: the connection is kept, but read Kafka too */
    GW_MSG_REDIS_TRUSTED,    /* answered again after SUSPECT: its stream is current */
    GW_MSG_REDIS_HEADS,      /* text: epoch; data: gw_head_t[len / sizeof]: the relay's heads */
    GW_MSG_REDIS_SUBSCRIBED, /* text: the channel Redis confirmed */
    GW_MSG_REDIS_EVENT,      /* data: an envelope published on a channel */
    GW_MSG_REDIS_SKIPPED,    /* partition, low..high: offsets the relay could not publish */
    GW_MSG_KAFKA_RECORD,     /* data: an envelope; reader, partition, offset */
    GW_MSG_KAFKA_PROBED,     /* partition, token, ok, low, high, text: epoch of the latest record */
    GW_MSG_KAFKA_SCANNING,   /* reader, partition, token: the scan covers the offset asked */
    GW_MSG_KAFKA_CAUGHT_UP,  /* partition, token: the scan reached the log end seen after asking */
    GW_MSG_KAFKA_LOST,       /* reader, partition, low: the scan's offset is gone; now at low */
    GW_MSG_SOCKET,           /* fd: an accepted client connection for this worker */
} gw_msg_kind_t;

typedef struct gw_msg {
    gw_msg_kind_t kind;
    int reader; /* KAFKA_RECORD, _SCANNING, _LOST: which scan (kafka_scan.h GW_READER_*) */
    int32_t partition;
    int64_t offset;
    uint64_t token;
    bool ok;
    int64_t low, high;
    char *text;    /* owned, NUL-terminated, or NULL */
    uint8_t *data; /* owned, or NULL */
    size_t len;
    int fd; /* owned (closed by gw_msg_free) unless -1 */
    int64_t recv_us;
    struct gw_msg *next;
} gw_msg_t;

typedef struct gw_inbox gw_inbox_t;

/* max_bytes bounds the data held; gw_inbox_push_bounded refuses beyond it. */
gw_inbox_t *gw_inbox_new(size_t max_bytes);
void gw_inbox_free(gw_inbox_t *inbox);
/* Called once the lws context exists; pushes wake it from then on. With
 * NULL (before the context is destroyed) nothing wakes it any more. */
void gw_inbox_attach(gw_inbox_t *inbox, struct lws_context *lws);

/* A message with copies of text and data (either may be NULL). */
gw_msg_t *gw_msg_new(gw_msg_kind_t kind, const char *text, const void *data, size_t len);
void gw_msg_free(gw_msg_t *msg);

/* Always queues (control messages; the Kafka thread, which waits first). */
void gw_inbox_push(gw_inbox_t *inbox, gw_msg_t *msg);
/* Queues unless the inbox holds max_bytes already: then frees msg and
 * returns false (the Redis thread, which cannot make Redis wait). */
bool gw_inbox_push_bounded(gw_inbox_t *inbox, gw_msg_t *msg);
/* Blocks while the inbox holds over half its bound, up to timeout_ms (the
 * Kafka thread, which must leave room for Redis). */
void gw_inbox_wait_room(gw_inbox_t *inbox, int timeout_ms);
/* The whole queue, oldest first; NULL when empty. */
gw_msg_t *gw_inbox_take(gw_inbox_t *inbox);
size_t gw_inbox_bytes(gw_inbox_t *inbox);

#endif
