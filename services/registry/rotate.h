/* rotate: re-seal every secret under a new key.
 *
 * Values are re-sealed one at a time, each in its own short transaction
 * and only if unchanged meanwhile (compare-and-swap on the old value), so
 * a registry can keep running; every value carries the id of the key that
 * sealed it, so old and new values open side by side until it is done. */
#ifndef PORTICO_REGISTRY_ROTATE_H
#define PORTICO_REGISTRY_ROTATE_H

#include "crypto.h"
#include "db.h"

typedef struct {
    const char *label; /* "integrations.client_secret" */
    long resealed;     /* moved to the new key now */
    long current;      /* were already under the new key */
    long changed;      /* changed by someone else meanwhile: run again */
    long failed;       /* could not be opened with any configured key */
} rotate_count_t;

#define ROTATE_COLUMNS 8

/* keys: the new key as primary plus every key that may have sealed the
 * existing values. counts gets one entry per sealed column. 0, or -1 when
 * the database failed (counts tell how far it got). */
int rotate_keys(db_t *db, const crypto_keyring_t *keys, rotate_count_t counts[ROTATE_COLUMNS]);
/* What keys would open the stored values, without opening any: per sealed
 * column, values under a key the keyring holds (current) and under one it
 * does not (failed). 0, or -1 when the database failed. */
int rotate_census(db_t *db, const crypto_keyring_t *keys, rotate_count_t counts[ROTATE_COLUMNS]);

#endif
