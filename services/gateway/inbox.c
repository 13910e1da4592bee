/* inbox.c - the queue into the lws thread; see inbox.h. */
#include "inbox.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "holdfast/alloc.h"
#include "holdfast/clock.h"

struct gw_inbox {
    pthread_mutex_t lock;
    pthread_cond_t room;
    gw_msg_t *head, *tail;
    size_t bytes;
    size_t max_bytes;
    bool wake_pending; /* the lws thread was woken and has not taken the queue yet */
    struct lws_context *lws;
};

gw_inbox_t *gw_inbox_new(size_t max_bytes)
{
    gw_inbox_t *inbox = hf_calloc(1, sizeof *inbox);
    pthread_mutex_init(&inbox->lock, NULL);
    pthread_cond_init(&inbox->room, NULL);
    inbox->max_bytes = max_bytes;
    return inbox;
}

void gw_inbox_free(gw_inbox_t *inbox)
{
    if (!inbox)
        return;
    gw_msg_t *m = inbox->head;
    while (m) {
        gw_msg_t *next = m->next;
        gw_msg_free(m);
        m = next;
    }
    pthread_cond_destroy(&inbox->room);
    pthread_mutex_destroy(&inbox->lock);
    hf_free(inbox);
}

void gw_inbox_attach(gw_inbox_t *inbox, struct lws_context *lws)
{
    pthread_mutex_lock(&inbox->lock);
    inbox->lws = lws;
    inbox->wake_pending = false;
    if (lws && inbox->head) {
        inbox->wake_pending = true;
        lws_cancel_service(lws);
    }
    pthread_mutex_unlock(&inbox->lock);
}

gw_msg_t *gw_msg_new(gw_msg_kind_t kind, const char *text, const void *data, size_t len)
{
    gw_msg_t *m = hf_calloc(1, sizeof *m);
    m->kind = kind;
    m->partition = -1;
    m->offset = -1;
    m->fd = -1;
    if (text)
        m->text = hf_strdup(text);
    if (data) {
        m->data = hf_memdup(data, len);
        m->len = len;
    }
    return m;
}

void gw_msg_free(gw_msg_t *msg)
{
    if (!msg)
        return;
    if (msg->fd >= 0)
        close(msg->fd);
    hf_free(msg->text);
    hf_free(msg->data);
    hf_free(msg);
}

static void inbox_append_locked(gw_inbox_t *inbox, gw_msg_t *msg, bool *wake)
{
    msg->next = NULL;
    if (inbox->tail)
        inbox->tail->next = msg;
    else
        inbox->head = msg;
    inbox->tail = msg;
    inbox->bytes += msg->len + sizeof *msg;
    *wake = inbox->lws && !inbox->wake_pending;
    if (*wake)
        inbox->wake_pending = true;
}

/* The wake-up happens under the lock so that gw_inbox_attach(NULL) before
 * the context is destroyed guarantees no later use of it. */
void gw_inbox_push(gw_inbox_t *inbox, gw_msg_t *msg)
{
    bool wake;
    pthread_mutex_lock(&inbox->lock);
    inbox_append_locked(inbox, msg, &wake);
    if (wake)
        lws_cancel_service(inbox->lws);
    pthread_mutex_unlock(&inbox->lock);
}

bool gw_inbox_push_bounded(gw_inbox_t *inbox, gw_msg_t *msg)
{
    bool wake = false, queued = false;
    pthread_mutex_lock(&inbox->lock);
    if (inbox->bytes + msg->len <= inbox->max_bytes) {
        inbox_append_locked(inbox, msg, &wake);
        queued = true;
    }
    if (wake)
        lws_cancel_service(inbox->lws);
    pthread_mutex_unlock(&inbox->lock);
    if (!queued)
        gw_msg_free(msg);
    return queued;
}

void gw_inbox_wait_room(gw_inbox_t *inbox, int timeout_ms)
{
    struct timespec until = hf_wall_deadline(timeout_ms);
    pthread_mutex_lock(&inbox->lock);
    while (inbox->bytes > inbox->max_bytes / 2)
        if (pthread_cond_timedwait(&inbox->room, &inbox->lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&inbox->lock);
}

gw_msg_t *gw_inbox_take(gw_inbox_t *inbox)
{
    pthread_mutex_lock(&inbox->lock);
    gw_msg_t *all = inbox->head;
    inbox->head = inbox->tail = NULL;
    inbox->bytes = 0;
    inbox->wake_pending = false;
    pthread_cond_broadcast(&inbox->room);
    pthread_mutex_unlock(&inbox->lock);
    return all;
}

size_t gw_inbox_bytes(gw_inbox_t *inbox)
{
    pthread_mutex_lock(&inbox->lock);
    size_t n = inbox->bytes;
    pthread_mutex_unlock(&inbox->lock);
    return n;
}
