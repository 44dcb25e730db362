/* presence: webs do not know each other, so each tells the registry every
 * few seconds that it is alive (instance.report); any web's status page
 * then lists them all (instance.list). */
#ifndef PORTICO_WEB_PRESENCE_H
#define PORTICO_WEB_PRESENCE_H

#define PRESENCE_INTERVAL_MS 5000
/* A web not heard from for this long is shown as gone. */
#define PRESENCE_STALE_S 15

/* Start the reporting thread. 0 or -1. */
int presence_start(const char *registry_endpoint);
/* Stop it (waits for the thread); safe when it never started. */
void presence_stop(void);

#endif
