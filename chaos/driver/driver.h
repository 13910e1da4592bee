/* driver.h - holdfast-chaos-driver: the load driver and verifier the chaos
 * scenarios run while they break things.
 *
 * One struct (cd_run_t) holds everything a run knows:
 *   - what it publishes (publish.c, its own thread): event k goes to channel
 *     k mod M through ingest, with Idempotency-Key PREFIX-k, retried with the
 *     same key and body until acknowledged or the retry deadline;
 *   - what every WebSocket client received (fleet.c, the main thread's lws
 *     loop): clients reconnect to the next gateway after any close and
 *     resubscribe with `since`;
 *   - the fault marks the scenario sends (SIGUSR1 fault, SIGUSR2 repaired);
 *   - the verdict (verify.c against PostgreSQL, report.c for latency phases,
 *     recovery time, JSON and the human summary).
 *
 * Threading: the publisher thread writes only cd_publish_t's publisher
 * fields and the pub_* counters; the main thread reads them after joining
 * it (pub_done is the one flag both touch, atomically). */
#ifndef HOLDFAST_CHAOS_DRIVER_H
#define HOLDFAST_CHAOS_DRIVER_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "holdfast/clock.h"

struct lws;
struct lws_context;

#define CD_MAX_URLS    16
#define CD_MAX_MESSAGE (4 << 20) /* larger than any event ingest accepts (1 MiB body) */
#define CD_PHASES      3         /* before, during, after the fault */

typedef enum cd_phase { CD_BEFORE = 0, CD_DURING = 1, CD_AFTER = 2 } cd_phase_t;

/* One event the driver publishes, indexed by its seq. */
typedef struct cd_publish {
    int64_t first_try_us; /* CLOCK_REALTIME of the first attempt: the payload's "t" */
    int64_t acked_us;     /* when ingest acknowledged it; 0 = never */
    int64_t all_recv_us;  /* main thread: latest receive among the clients that got it */
} cd_publish_t;

/* One event as a client received it. */
typedef struct cd_delivery {
    int64_t offset;  /* the event's Kafka offset */
    int64_t prev;    /* its prev_offset; -2 when absent */
    int64_t seq;     /* the payload's seq; -1 when absent */
    int64_t recv_us; /* CLOCK_REALTIME at receipt */
} cd_delivery_t;

typedef struct cd_client {
    int index;               /* position in cd_run_t.clients */
    int url_index;           /* gateway it uses now (moves on after each close) */
    char channel[96];        /* the one channel it subscribes to */
    struct lws *wsi;         /* current connection; NULL between connections */
    bool want_subscribe;     /* connected, subscribe not written yet */
    bool subscribed;         /* confirmed on the current connection */
    bool ever_subscribed;    /* first confirmation seen */
    int64_t start_offset;    /* offset of the first confirmation: it must get all after it */
    int64_t pos_offset;      /* resume position: last event's offset (or subscribed at) */
    char pos_epoch[72];      /* its epoch; "" with pos_epoch_null */
    bool pos_epoch_null;     /* the epoch was null */
    int64_t reconnect_at;    /* CLOCK_MONOTONIC us of the next connect; 0 = none due */
    int not_recovered;       /* resubscriptions answered recovered:false */
    int errors;              /* error messages received (unavailable aside) */
    int unavailable;         /* `unavailable` answers: subscribed again after a pause */
    int64_t resubscribe_at;  /* CLOCK_MONOTONIC us of that new subscribe; 0 = none */
    char last_error[96];     /* the last one's code */
    int close_code;          /* the gateway's close code on this connection; 0 = none yet */
    long long wrong_channel; /* events of a channel it did not subscribe to */
    char *rx;                /* owned: the message being reassembled */
    size_t rx_len, rx_cap;   /* its length, the buffer's size */
    bool rx_oversized;       /* over CD_MAX_MESSAGE: dropped, counted as an error */
    cd_delivery_t *got;      /* owned: every event received, in order */
    size_t ngot, capgot;     /* its length and capacity */
} cd_client_t;

typedef struct cd_url {
    char host[128];  /* loopback address */
    int port;        /* TCP port */
    char path[2048]; /* e.g. /v1/ws, or /v1/ws?token=... */
} cd_url_t;

/* Latency histogram: 100 us buckets up to 60 s, the rest in the last. */
#define CD_HIST_BUCKET_US 100
#define CD_HIST_BUCKETS   600000
typedef struct cd_hist {
    uint32_t *bucket; /* owned: CD_HIST_BUCKETS counters */
    long long count;  /* samples */
    int64_t max_us;   /* largest sample */
} cd_hist_t;

typedef struct cd_run {
    /* settings */
    cd_url_t gateways[CD_MAX_URLS]; /* WebSocket URLs, clients round-robin */
    int ngateways;                  /* how many */
    cd_url_t ingest;                /* ingest's address (path unused) */
    const char *pg_url;             /* PostgreSQL, the source of truth */
    int nclients;                   /* WebSocket clients */
    int nchannels;                  /* channels, client i on i mod M */
    double rate;                    /* events per second published */
    double duration_s;              /* publishing time */
    int payload_bytes;              /* padding added to each event's data */
    double retry_s;                 /* how long after publishing ends retries go on */
    double idle_s;                  /* end once nothing arrived this long after publishing */
    double drain_s;                 /* longest wait for deliveries after publishing */
    double connect_s;               /* longest wait for every client to subscribe */
    char prefix[64];                /* channel and idempotency-key prefix of this run */
    char auth_header[2048];         /* "Authorization: Bearer ...\r\n" or "" */
    const char *out_path;           /* JSON result file, or NULL */
    const char *ready_path;         /* written once every client is subscribed */
    const char *scenario;           /* name shown in the report */
    int64_t start_us; /* CLOCK_REALTIME when publishing began: reports count from it */
    /* publishing (publish.c) */
    cd_publish_t *events;         /* owned: nevents entries, by seq */
    long long nevents;            /* rate x duration */
    long long pub_acked;          /* acknowledged (201, or 200 replay) */
    long long pub_retries;        /* requests beyond each event's first */
    long long pub_failed;         /* never acknowledged: retry deadline or a 4xx */
    long long pub_transport_errs; /* requests that got no HTTP answer */
    long long pub_status_5xx;     /* 5xx/429 answers */
    int64_t pub_first_fail_us;    /* first failed request */
    int64_t pub_last_fail_us;     /* last failed request */
    long long pub_sent;           /* events attempted (acked + failed) */
    char pub_error[160];          /* a 4xx answer, which stops the publisher */
    atomic_bool pub_done;         /* set by the publisher thread as it ends */
    /* clients (fleet.c) */
    struct lws_context *lws;  /* the clients' lws context */
    cd_client_t *clients;     /* owned: nclients */
    int next_connect;         /* clients not yet started: [next_connect, nclients) */
    int nsubscribed;          /* clients that have had their first confirmation */
    long long closes;         /* connections that ended during the run */
    long long close_codes[5]; /* 1006 (cut), 1012 (drain), 4001 (slow), other, connect fail */
    long long reconnects;     /* connects after the first */
    int64_t last_recv_us;     /* CLOCK_MONOTONIC of the latest delivery */
    /* fault marks (CLOCK_REALTIME us; 0 = not sent) */
    volatile sig_atomic_t fault_mark;    /* SIGUSR1 arrived */
    volatile sig_atomic_t repaired_mark; /* SIGUSR2 arrived */
    int64_t fault_us;                    /* when */
    int64_t repaired_us;                 /* when */
    atomic_int interrupted;              /* SIGINT/SIGTERM: stop early, still report */
} cd_run_t;

/* ws://HOST:PORT/PATH or http://HOST:PORT into *url; false if malformed or
 * not a 127.0.0.0/8 address. */
bool cd_url_parse(const char *text, cd_url_t *url);

/* publish.c: starts the publisher thread; 0 or -1 (with a message). */
int cd_publish_start(cd_run_t *run);
/* Waits for it to end. */
void cd_publish_join(void);

/* fleet.c: creates the lws context and the clients; 0 or -1. */
int cd_fleet_init(cd_run_t *run);
/* Runs the loop until every client is subscribed (true) or connect_s
 * passed or an interrupt (false). */
bool cd_fleet_wait_subscribed(cd_run_t *run);
/* Every client has received at least up to its channel's offset in
 * max_offset (indexed by channel; -1 = nothing owed). */
bool cd_fleet_reached(const cd_run_t *run, const int64_t *max_offset);
/* One turn of the loop (at most a tick, 10 ms); false on a loop failure. */
bool cd_fleet_service(cd_run_t *run);
/* Every client is connected and subscribed at this moment. */
bool cd_fleet_all_subscribed_now(const cd_run_t *run);
/* Closes every connection and frees the context (the records stay). */
void cd_fleet_stop(cd_run_t *run);

/* verify.c: the verdict against PostgreSQL; fills *v. 0, or -1 when
 * PostgreSQL could not be read (the run is then not verified). */
typedef struct cd_verdict {
    long long pg_events;     /* this run's events in PostgreSQL */
    long long pg_unrelayed;  /* of those, still without a Kafka offset at the end */
    long long acked_missing; /* acknowledged, not in PostgreSQL */
    long long acked_doubled; /* acknowledged, in PostgreSQL more than once */
    long long expected;  /* deliveries owed: per client, its channel's events after it subscribed */
    long long delivered; /* deliveries received */
    long long missing;   /* owed, never received */
    long long duplicates;         /* received more than once */
    long long unexpected;         /* received, not owed (unknown offset, before the subscription) */
    long long order_violations;   /* received after an event with a higher offset */
    long long chain_breaks;       /* prev_offset not the offset before it */
    long long content_mismatches; /* offset delivered with another event's seq */
    long long not_recovered;      /* resubscriptions answered recovered:false */
    long long client_errors;      /* error messages, unparsable or oversized messages */
    long long unavailable;        /* `unavailable` answers (retried, not errors) */
    long long per_client_min;     /* fewest deliveries one client got */
    long long per_client_max;     /* most */
    int clients_incomplete;       /* clients with anything missing */
    char first_problem[256];      /* the first violation, described */
} cd_verdict_t;
int cd_verify(cd_run_t *run, cd_verdict_t *v);
/* How many of the run's events PostgreSQL holds without a Kafka offset yet
 * (the relay has not moved them); -1 when PostgreSQL cannot be asked. Keeps
 * one connection open between calls; cd_verify_close() ends it. */
long long cd_verify_unrelayed(cd_run_t *run);
/* Fills max_offset[channel] with the highest Kafka offset PostgreSQL has
 * for each of the run's channels (-1 for none); -1 when it cannot be asked. */
int cd_verify_max_offsets(cd_run_t *run, int64_t *max_offset);
void cd_verify_close(void);

/* report.c: latency per phase, recovery, the JSON file and the summary.
 * Returns the exit code: 0 clean, 1 any loss, duplicate, reordering,
 * unverified run or unacknowledged publish. */
int cd_report(cd_run_t *run, const cd_verdict_t *v, bool verified);

#endif
