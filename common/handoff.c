#include "handoff.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct handoff_t {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    void **ring;
    int capacity, head, count;
    int waiting; /* takers blocked in handoff_take */
    bool armed;  /* the polling taker waits on fd */
    bool closed;
    int fd;
};

handoff_t *handoff_new(int capacity)
{
    if (capacity <= 0)
        return NULL;
    handoff_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->capacity = capacity;
    self->ring = calloc((size_t)capacity, sizeof *self->ring);
    self->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    /* Waits are measured on the clock that does not jump. */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&self->lock, NULL);
    if (!self->ring || self->fd < 0)
        handoff_destroy(&self, NULL);
    return self;
}

void handoff_destroy(handoff_t **self_p, void (*drop)(void *item))
{
    handoff_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (int i = 0; drop && i < self->count; i++)
        drop(self->ring[(self->head + i) % self->capacity]);
    if (self->fd >= 0)
        close(self->fd);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->lock);
    free(self->ring);
    free(self);
    *self_p = NULL;
}

int handoff_put(handoff_t *self, void *item)
{
    bool wake_fd = false;
    pthread_mutex_lock(&self->lock);
    if (self->closed || self->count == self->capacity) {
        pthread_mutex_unlock(&self->lock);
        return -1;
    }
    self->ring[(self->head + self->count++) % self->capacity] = item;
    if (self->waiting > 0)
        pthread_cond_signal(&self->cond);
    if (self->armed) {
        self->armed = false;
        wake_fd = true;
    }
    pthread_mutex_unlock(&self->lock);
    /* Outside the lock: the taker may run at once, and should not then
     * wait for this thread to let go of it. */
    if (wake_fd) {
        uint64_t one = 1;
        if (write(self->fd, &one, sizeof one) < 0) {
            /* The counter cannot overflow here: it is read before every
             * arm. Nothing else can fail on an eventfd. */
        }
    }
    return 0;
}

static void *s_pop(handoff_t *self)
{
    void *item = self->ring[self->head];
    self->head = (self->head + 1) % self->capacity;
    self->count--;
    return item;
}

void *handoff_take(handoff_t *self, int ms)
{
    struct timespec until;
    if (ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += ms / 1000;
        until.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    void *item = NULL;
    pthread_mutex_lock(&self->lock);
    while (self->count == 0 && !self->closed) {
        self->waiting++;
        int rc = ms >= 0 ? pthread_cond_timedwait(&self->cond, &self->lock, &until)
                         : pthread_cond_wait(&self->cond, &self->lock);
        self->waiting--;
        if (rc == ETIMEDOUT)
            break;
    }
    if (self->count > 0 && !self->closed)
        item = s_pop(self);
    pthread_mutex_unlock(&self->lock);
    return item;
}

int handoff_take_some(handoff_t *self, void **items, int max)
{
    int n = 0;
    pthread_mutex_lock(&self->lock);
    self->armed = false;
    while (n < max && self->count > 0)
        items[n++] = s_pop(self);
    pthread_mutex_unlock(&self->lock);
    return n;
}

bool handoff_arm(handoff_t *self)
{
    pthread_mutex_lock(&self->lock);
    self->armed = self->count == 0;
    bool armed = self->armed;
    pthread_mutex_unlock(&self->lock);
    return armed;
}

int handoff_fd(const handoff_t *self)
{
    return self->fd;
}

void handoff_clear_fd(handoff_t *self)
{
    uint64_t n;
    if (read(self->fd, &n, sizeof n) < 0) {
        /* EAGAIN: another wake already read it; nothing to clear. */
    }
}

int handoff_count(handoff_t *self)
{
    pthread_mutex_lock(&self->lock);
    int n = self->count;
    pthread_mutex_unlock(&self->lock);
    return n;
}

void handoff_close(handoff_t *self)
{
    pthread_mutex_lock(&self->lock);
    self->closed = true;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
}
