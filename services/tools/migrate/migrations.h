/* migrations.h - the SQL migrations compiled into holdfast-migrate
 * (generated from schemas/sql/NNN_name.sql, in version order). */
#ifndef HOLDFAST_MIGRATIONS_H
#define HOLDFAST_MIGRATIONS_H

typedef struct migration {
    int version;      /* NNN of the file name */
    const char *name; /* file name */
    const char *sql;  /* the whole file */
} migration_t;

extern const migration_t migrations[];
extern const int migrations_count;

#endif
