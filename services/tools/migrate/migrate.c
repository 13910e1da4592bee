/* migrate.c - holdfast-migrate: applies schemas/sql migrations, once each.
 *
 * Safe to run concurrently (e.g. one Job per deploy, or every replica at
 * start): the whole run holds a PostgreSQL advisory lock, so a second
 * runner waits and then finds nothing left to do. Each migration runs in
 * its own transaction together with its row in holdfast.schema_migrations,
 * so a crash leaves it either applied or not. An applied migration whose
 * text changed since is an error: migrations are append-only. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "holdfast/config.h"
#include "holdfast/log.h"
#include "migrations.h"

/* "Hold" in ASCII: the advisory lock key every holdfast-migrate takes. */
#define MIGRATE_LOCK_KEY "1215261796"

typedef struct migrate_config {
    char *pg_url;         /* libpq connection URI */
    long long partitions; /* partition count for a new schema */
    bool status;          /* print what is applied and exit */
    bool check;           /* exit 3 while a migration is pending; change nothing */
    char *log_level;      /* debug, info, warn, error */
} migrate_config_t;

static const hf_conf_spec_t migrate_settings[] = {
    {"pg-url", HF_CONF_STRING, offsetof(migrate_config_t, pg_url),
     "postgresql://holdfast@127.0.0.1:5432/holdfast", 0, 0, "PostgreSQL connection URI"},
    {"partitions", HF_CONF_INT, offsetof(migrate_config_t, partitions), "8", 1, 4096,
     "partition count written when the schema is created (must match the Kafka topic)"},
    {"status", HF_CONF_BOOL, offsetof(migrate_config_t, status), "false", 0, 0,
     "list applied and pending migrations, change nothing"},
    {"check", HF_CONF_BOOL, offsetof(migrate_config_t, check), "false", 0, 0,
     "exit 0 if every migration is applied, 3 if one is pending; change nothing (an init "
     "container waiting for the migration job)"},
    {"log-level", HF_CONF_STRING, offsetof(migrate_config_t, log_level), "info", 0, 0,
     "debug, info, warn or error"},
};
#define MIGRATE_NSETTINGS (sizeof migrate_settings / sizeof migrate_settings[0])

static hf_err_t migrate_exec(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    hf_err_t err = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? HF_OK : HF_ERR_INVALID;
    if (err != HF_OK)
        hf_error("%s", PQresultErrorMessage(res));
    PQclear(res);
    return err;
}

/* Returns the md5 of the applied migration's text, or NULL (caller frees). */
static char *migrate_applied_md5(PGconn *conn, int version)
{
    char v[16];
    snprintf(v, sizeof v, "%d", version);
    const char *params[] = {v};
    PGresult *res =
        PQexecParams(conn, "SELECT checksum FROM holdfast.schema_migrations WHERE version = $1", 1,
                     NULL, params, NULL, NULL, 0);
    char *md5 = NULL;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        md5 = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return md5;
}

static hf_err_t migrate_apply(PGconn *conn, const migration_t *m)
{
    char v[16];
    snprintf(v, sizeof v, "%d", m->version);
    const char *params[] = {v, m->name, m->sql};
    if (migrate_exec(conn, "BEGIN") != HF_OK)
        return HF_ERR_UNAVAILABLE;
    if (migrate_exec(conn, m->sql) != HF_OK) {
        hf_error("migration %s failed; nothing of it was applied", m->name);
        migrate_exec(conn, "ROLLBACK");
        return HF_ERR_INVALID;
    }
    PGresult *res = PQexecParams(conn,
                                 "INSERT INTO holdfast.schema_migrations (version, name, checksum) "
                                 "VALUES ($1, $2, md5($3))",
                                 3, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok || migrate_exec(conn, "COMMIT") != HF_OK) {
        migrate_exec(conn, "ROLLBACK");
        return HF_ERR_INVALID;
    }
    hf_info("applied migration %s", m->name);
    return HF_OK;
}

/* The checksum the server computes for sql, to compare with what was applied. */
static char *migrate_md5(PGconn *conn, const char *sql)
{
    const char *params[] = {sql};
    PGresult *res = PQexecParams(conn, "SELECT md5($1)", 1, NULL, params, NULL, NULL, 0);
    char *md5 = PQresultStatus(res) == PGRES_TUPLES_OK ? strdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    return md5;
}

static hf_err_t migrate_one(PGconn *conn, const migration_t *m, bool status_only)
{
    char *applied = migrate_applied_md5(conn, m->version);
    if (!applied) {
        if (status_only) {
            printf("pending  %s\n", m->name);
            return HF_OK;
        }
        return migrate_apply(conn, m);
    }
    char *expected = migrate_md5(conn, m->sql);
    hf_err_t err = HF_OK;
    if (!expected || strcmp(applied, expected) != 0) {
        hf_error("migration %s was applied with different text; migrations are append-only",
                 m->name);
        err = HF_ERR_CONFLICT;
    } else if (status_only) {
        printf("applied  %s\n", m->name);
    }
    free(applied);
    free(expected);
    return err;
}

/* A brand-new schema takes the configured partition count; an existing one
 * keeps its own, since changing it bumps the epoch (say so instead). */
static hf_err_t migrate_partitions(PGconn *conn, long long partitions, bool fresh)
{
    char n[24];
    snprintf(n, sizeof n, "%lld", partitions);
    const char *params[] = {n};
    const char *sql = fresh ? "UPDATE holdfast.meta SET partition_count = $1::integer, "
                              "epoch = holdfast.new_epoch(), epoch_reason = 'created' "
                              "RETURNING partition_count, epoch"
                            : "SELECT partition_count, epoch FROM holdfast.meta "
                              "WHERE $1::integer IS NOT NULL";
    PGresult *res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        hf_error("reading holdfast.meta failed: %s", PQresultErrorMessage(res));
        PQclear(res);
        return HF_ERR_INVALID;
    }
    long long have = atoll(PQgetvalue(res, 0, 0));
    if (have != partitions)
        hf_warn("schema has %lld partitions, not %lld: kept (change it with "
                "SELECT holdfast.set_partition_count(n), which starts a new epoch)",
                have, partitions);
    hf_info("partitions %lld, epoch %s", have, PQgetvalue(res, 0, 1));
    PQclear(res);
    return HF_OK;
}

/* Migrations not yet applied (all of them when the schema does not exist),
 * or -1 on error. Reads only. */
static int migrate_pending(PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT to_regclass('holdfast.schema_migrations') IS NULL");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        hf_error("%s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    bool missing = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (missing)
        return migrations_count;
    int pending = 0;
    for (int i = 0; i < migrations_count; i++) {
        char *applied = migrate_applied_md5(conn, migrations[i].version);
        pending += applied == NULL;
        free(applied);
    }
    return pending;
}

static hf_err_t migrate_run(PGconn *conn, const migrate_config_t *cfg)
{
    if (migrate_exec(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")") != HF_OK)
        return HF_ERR_UNAVAILABLE;
    hf_err_t err = migrate_exec(conn, "SET client_min_messages = warning");
    if (err == HF_OK)
        err = migrate_exec(conn, "CREATE SCHEMA IF NOT EXISTS holdfast;"
                                 "CREATE TABLE IF NOT EXISTS holdfast.schema_migrations ("
                                 " version integer PRIMARY KEY, name text NOT NULL,"
                                 " checksum text NOT NULL,"
                                 " applied_at timestamptz NOT NULL DEFAULT now())");
    bool fresh = false;
    if (err == HF_OK && !cfg->status) {
        char *first = migrate_applied_md5(conn, migrations[0].version);
        fresh = first == NULL;
        free(first);
    }
    for (int i = 0; err == HF_OK && i < migrations_count; i++)
        err = migrate_one(conn, &migrations[i], cfg->status);
    if (err == HF_OK && !cfg->status)
        err = migrate_partitions(conn, cfg->partitions, fresh);
    migrate_exec(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")");
    return err;
}

int main(int argc, char **argv)
{
    migrate_config_t cfg = {0};
    int rc = hf_config_load_tool(
        "holdfast-migrate", migrate_settings, MIGRATE_NSETTINGS, &cfg, argc, argv,
        "holdfast-migrate: creates or upgrades the holdfast schema in PostgreSQL.");
    if (rc >= 0)
        return rc;
    int level = hf_log_level_parse(cfg.log_level);
    hf_log_init("migrate", level < 0 ? HF_LOG_INFO : (hf_log_level_t)level);
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"10", "holdfast-migrate", cfg.pg_url, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    rc = 0;
    if (PQstatus(conn) != CONNECTION_OK) {
        hf_error("cannot connect to PostgreSQL: %s", PQerrorMessage(conn));
        rc = 1;
    } else if (cfg.check) {
        int pending = migrate_pending(conn);
        if (pending > 0)
            hf_info("%d migration(s) pending", pending);
        rc = pending < 0 ? 1 : pending > 0 ? 3 : 0;
    } else if (migrate_run(conn, &cfg) != HF_OK) {
        rc = 1;
    }
    PQfinish(conn);
    hf_config_free(migrate_settings, MIGRATE_NSETTINGS, &cfg);
    return rc;
}
