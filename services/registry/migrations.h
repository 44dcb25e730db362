/* migrations: the registry's schema, numbered and applied in order.
 *
 * Each migration runs in its own transaction and is recorded in
 * schema_migrations; a session-level advisory lock keeps two registries
 * that start at once from racing. A database whose schema is newer than
 * this binary knows is refused, never touched. */
#ifndef PORTICO_REGISTRY_MIGRATIONS_H
#define PORTICO_REGISTRY_MIGRATIONS_H

#include "db.h"

#include <stddef.h>

/* The schema version this binary expects. */
int migrations_latest(void);

/* Apply what is missing. 0 with *applied set, -1 with a message in why
 * (including "database schema version N is newer ..."). */
int migrations_apply(db_t *db, int *applied, int *version, char *why, size_t why_size);

/* The version recorded in the database (0 when none). 0 or -1. */
int migrations_current(db_t *db, int *version, char *why, size_t why_size);

#endif
