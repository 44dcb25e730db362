#include "busauth.h"

#include "log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define MAX_KEYS 64
#define RELOAD_MS 1000
#define NSERVICES 4

typedef struct {
    unsigned service;
    uint8_t key[32];
} known_key_t;

static const char *const s_names[NSERVICES] = {"web", "registry", "broker", "bitbucket"};

static bool s_enabled;
static char s_self[16];
static char s_dir[512];
static zcert_t *s_cert;
static char s_server_keys[NSERVICES][41];
static char s_secret_path[1024];
/* s_cert changes on a rotation (busauth_reload_secret) while other threads
 * set up sockets with it. */
static pthread_mutex_t s_cert_lock = PTHREAD_MUTEX_INITIALIZER;
/* Counts the changes of s_cert: a client socket made before the last one
 * still speaks with the old key, which is about to be removed. */
static atomic_int s_cert_generation;

/* Every public key of each service, for clients that follow a server's
 * rotation: read again at most once a second. */
static pthread_mutex_t s_pub_lock = PTHREAD_MUTEX_INITIALIZER;
static known_key_t s_pub[MAX_KEYS];
static int s_npub = -1;
static int64_t s_pub_ms;

/* The ZAP handler's own state: only its thread touches it after start. */
static unsigned s_admit;
static known_key_t s_keys[MAX_KEYS];
static int s_nkeys;
static int64_t s_loaded_ms;
static void *s_zap_sock;
static pthread_t s_zap_thread;
/* Set by busauth_reload_secret (a SIGHUP): the ZAP handler reads the folder
 * again at its next request, however fresh its copy, so that a key removed
 * before the rebind that follows cannot come back in on the new bind. */
static atomic_bool s_zap_stale;

/* A server's admitted keys as they were when it last bound (start, or
 * busauth_reload_secret): a key removed since is cut off by binding again,
 * which ends the connections made with it. Under s_cert_lock. */
static known_key_t s_bound[MAX_KEYS];
static int s_nbound = -1;

static atomic_llong s_refused_last_ms;
static atomic_int s_refused_suppressed;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *busauth_name(unsigned service)
{
    for (int i = 0; i < NSERVICES; i++)
        if (service == (1u << i))
            return s_names[i];
    return "";
}

unsigned busauth_bit(const char *name)
{
    for (int i = 0; name && i < NSERVICES; i++)
        if (!strcmp(name, s_names[i]))
            return 1u << i;
    return 0;
}

bool busauth_enabled(void)
{
    return s_enabled;
}

const char *busauth_self(void)
{
    return s_self;
}

/* The service a certificate file belongs to: its name up to the first
 * dot, when the name ends in ".cert". */
static unsigned s_file_service(const char *file)
{
    size_t n = strlen(file);
    if (n < 6 || strcmp(file + n - 5, ".cert") != 0)
        return 0;
    char name[16];
    size_t k = strcspn(file, ".");
    if (k >= sizeof name)
        return 0;
    memcpy(name, file, k);
    name[k] = '\0';
    return busauth_bit(name);
}

/* Whether name is a service or service.suffix, with a suffix of letters,
 * digits and dashes. */
static bool s_file_service_name(const char *name)
{
    char file[80];
    snprintf(file, sizeof file, "%s.cert", name);
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
            return false;
    return s_file_service(file) != 0;
}

/* The public key of a public certificate file, as z85 text (40
 * characters). Not zcert_load: it reads "<path>_secret" instead when there
 * is one, so a certificate replaced next to an old secret one would go on
 * meaning the old key. 0 or -1. */
static int s_read_public(const char *path, char out[41])
{
    zconfig_t *cfg = zconfig_load(path);
    const char *key = cfg ? zconfig_get(cfg, "curve/public-key", NULL) : NULL;
    int rc = key && strlen(key) == 40 ? 0 : -1;
    if (!rc)
        snprintf(out, 41, "%s", key);
    zconfig_destroy(&cfg);
    return rc;
}

/* Read every public certificate in the folder. The count, or -1. */
static int s_load_keys(const char *dir, known_key_t *keys, int max, char *err, size_t err_size)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, err_size, "PORTICO_BUS_KEYS_DIR: cannot open \"%s\": %s", dir, strerror(errno));
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        unsigned service = s_file_service(e->d_name);
        if (!service)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char z85[41];
        if (s_read_public(path, z85) < 0 || !zmq_z85_decode(keys[n].key, z85)) {
            log_warn("could not read a bus certificate", "file=%s", e->d_name);
            continue;
        }
        keys[n].service = service;
        n++;
    }
    closedir(d);
    return n;
}

/* Read the folder again into keys/n when the last read is a second old
 * (or there was none: *n < 0, or force); a folder that cannot be read
 * keeps them. */
static void s_refresh_keys(known_key_t *keys, int *n, int64_t *loaded_ms, bool force)
{
    int64_t now = s_now_ms();
    if (!force && *n >= 0 && now - *loaded_ms < RELOAD_MS)
        return;
    char err[600];
    known_key_t found[MAX_KEYS];
    int k = s_load_keys(s_dir, found, MAX_KEYS, err, sizeof err);
    if (k >= 0) {
        memcpy(keys, found, sizeof found);
        *n = k;
    }
    *loaded_ms = now;
}

/* Load the z85 public key of <dir>/<server>.cert. 0 or -1. */
static int s_load_server_key(const char *server, char out[41], char *err, size_t err_size)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.cert", s_dir, server);
    uint8_t raw[32];
    if (s_read_public(path, out) < 0 || !zmq_z85_decode(raw, out)) {
        snprintf(err, err_size, "PORTICO_BUS_KEYS_DIR: cannot read the %s service's public key \"%s\"", server, path);
        return -1;
    }
    return 0;
}

static bool s_nonzero(const uint8_t *k)
{
    uint8_t acc = 0;
    for (int i = 0; i < 32; i++)
        acc |= k[i];
    return acc != 0;
}

/* Load a secret certificate, refusing one without a secret key. */
static zcert_t *s_load_secret(const char *path, const char *var, char *err, size_t err_size)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(err, err_size, "%s: cannot read \"%s\": %s", var, path, strerror(errno));
        return NULL;
    }
    zcert_t *cert = zcert_load(path);
    if (!cert || !s_nonzero(zcert_secret_key(cert)) || !s_nonzero(zcert_public_key(cert))) {
        snprintf(err, err_size,
                 "%s: \"%s\" is not a CURVE secret certificate (run bus-keygen, which replaces "
                 "an unreadable one)",
                 var, path);
        zcert_destroy(&cert);
        return NULL;
    }
    /* A secret others can read is no secret: refused, as ssh refuses a
     * private key others can read (keygen makes 0600; Swarm mounts 0400). */
    if (st.st_mode & 077) {
        snprintf(err, err_size, "%s: \"%s\" can be read by other users (mode %03o): chmod 600 it", var, path,
                 (unsigned)(st.st_mode & 0777));
        zcert_destroy(&cert);
        return NULL;
    }
    return cert;
}

void busauth_log_refused(const char *what, const char *peer, const char *address)
{
    int64_t now = s_now_ms();
    long long last = atomic_load(&s_refused_last_ms);
    if (now - last < 1000 || !atomic_compare_exchange_strong(&s_refused_last_ms, &last, now)) {
        atomic_fetch_add(&s_refused_suppressed, 1);
        return;
    }
    char q1[80], q2[80];
    log_warn("refused a bus peer", "what=%s peer=%s address=%s suppressed=%d", what,
             log_quote(peer ? peer : "", q1, sizeof q1), log_quote(address ? address : "", q2, sizeof q2),
             atomic_exchange(&s_refused_suppressed, 0));
}

/* Receive one frame into buf (truncated, NUL-terminated); its full size,
 * or -1. *more says whether frames follow. */
static int s_recv_part(void *sock, char *buf, size_t size, bool *more)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, 0) < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    size_t n = zmq_msg_size(&m);
    size_t k = n < size - 1 ? n : size - 1;
    memcpy(buf, zmq_msg_data(&m), k);
    buf[k] = '\0';
    *more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    return (int)n;
}

/* Answer one ZAP request (RFC 27). Returns -1 when the context ends. */
static int s_zap_once(void *sock)
{
    enum { VERSION, REQUEST_ID, DOMAIN, ADDRESS, IDENTITY, MECHANISM, KEY, NPARTS };
    char parts[NPARTS][256];
    int sizes[NPARTS] = {0};
    int n = 0;
    bool more = true;
    while (more) {
        char scratch[256];
        int got = s_recv_part(sock, n < NPARTS ? parts[n] : scratch, sizeof scratch, &more);
        if (got < 0)
            return zmq_errno() == ETERM ? -1 : 0;
        if (n < NPARTS)
            sizes[n] = got;
        n++;
    }
    if (n < MECHANISM + 1)
        return 0;
    s_refresh_keys(s_keys, &s_nkeys, &s_loaded_ms, atomic_exchange(&s_zap_stale, false));
    unsigned service = 0;
    if (!strcmp(parts[MECHANISM], "CURVE") && n > KEY && sizes[KEY] == 32)
        for (int i = 0; i < s_nkeys && !service; i++)
            if ((s_keys[i].service & s_admit) && !memcmp(s_keys[i].key, parts[KEY], 32))
                service = s_keys[i].service;
    if (!service) {
        char fp[41] = "";
        if (n > KEY && sizes[KEY] == 32)
            zmq_z85_encode(fp, (const uint8_t *)parts[KEY], 32);
        fp[12] = '\0'; /* a public key's start is enough to find it */
        busauth_log_refused(!strcmp(parts[MECHANISM], "CURVE") ? "unknown key" : "no key", fp, parts[ADDRESS]);
    }
    const char *status = service ? "200" : "400";
    const char *frames[] = {"1.0", parts[REQUEST_ID], status, service ? "OK" : "refused", busauth_name(service), ""};
    size_t lens[] = {
        3, (size_t)(sizes[REQUEST_ID] < 255 ? sizes[REQUEST_ID] : 255), 3, strlen(frames[3]), strlen(frames[4]), 0};
    for (int i = 0; i < 6; i++)
        if (zmq_send(sock, frames[i], lens[i], i < 5 ? ZMQ_SNDMORE : 0) < 0)
            return zmq_errno() == ETERM ? -1 : 0;
    return 0;
}

static void *s_zap_run(void *arg)
{
    void *sock = arg;
    for (;;) {
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, -1);
        if (rc < 0 && zmq_errno() == ETERM)
            break;
        if (rc > 0 && s_zap_once(sock) < 0)
            break;
    }
    zmq_close(sock);
    return NULL;
}

int busauth_init(const char *service, unsigned admit, unsigned servers, char *err, size_t err_size)
{
    char secret[1024];
    const char *dir = getenv("PORTICO_BUS_KEYS_DIR");
    if (!dir || !*dir) {
        snprintf(err, err_size, "PORTICO_BUS_KEYS_DIR: required (the folder of the bus's CURVE certificates)");
        return -1;
    }
    if (strlen(dir) >= sizeof s_dir) {
        snprintf(err, err_size, "PORTICO_BUS_KEYS_DIR: the path is too long");
        return -1;
    }
    snprintf(s_dir, sizeof s_dir, "%s", dir);
    snprintf(s_self, sizeof s_self, "%s", service);
    const char *sf = getenv("PORTICO_BUS_SECRET_FILE");
    if (sf && *sf)
        snprintf(secret, sizeof secret, "%s", sf);
    else
        snprintf(secret, sizeof secret, "%s/%s.cert_secret", s_dir, service);
    zcert_t *cert =
        s_load_secret(secret, sf && *sf ? "PORTICO_BUS_SECRET_FILE" : "PORTICO_BUS_KEYS_DIR", err, err_size);
    if (!cert) {
        if (!(sf && *sf) && access(secret, F_OK) < 0) {
            size_t n = strlen(err);
            snprintf(err + n, err_size - n, " (`portico-%s bus-keygen` makes this service's key pair there)", service);
        }
        return -1;
    }
    pthread_mutex_lock(&s_cert_lock); /* a second start in one process (tests) replaces the first's */
    zcert_destroy(&s_cert);
    s_cert = cert;
    pthread_mutex_unlock(&s_cert_lock);
    snprintf(s_secret_path, sizeof s_secret_path, "%s", secret);
    for (int i = 0; i < NSERVICES; i++)
        if ((servers & (1u << i)) && s_load_server_key(s_names[i], s_server_keys[i], err, err_size) < 0)
            return -1;
    if (admit && s_zap_sock) {
        s_admit = admit; /* a second start in one process (tests): one handler */
    } else if (admit) {
        s_admit = admit;
        s_nkeys = s_load_keys(s_dir, s_keys, MAX_KEYS, err, err_size);
        if (s_nkeys < 0)
            return -1;
        s_loaded_ms = s_now_ms();
        pthread_mutex_lock(&s_cert_lock);
        memcpy(s_bound, s_keys, sizeof s_bound);
        s_nbound = s_nkeys;
        pthread_mutex_unlock(&s_cert_lock);
        for (int i = 0; i < NSERVICES; i++) {
            bool found = false;
            for (int k = 0; k < s_nkeys; k++)
                found |= s_keys[k].service == (1u << i);
            if ((admit & (1u << i)) && !found) {
                snprintf(err, err_size, "PORTICO_BUS_KEYS_DIR: no public key of the %s service (%s/%s.cert)",
                         s_names[i], s_dir, s_names[i]);
                return -1;
            }
        }
        s_zap_sock = zmq_socket(zsys_init(), ZMQ_REP);
        int linger = 0;
        if (!s_zap_sock || zmq_setsockopt(s_zap_sock, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
            zmq_bind(s_zap_sock, ZAP_ENDPOINT) < 0) {
            snprintf(err, err_size, "could not start the bus authenticator: %s", zmq_strerror(zmq_errno()));
            return -1;
        }
        if (pthread_create(&s_zap_thread, NULL, s_zap_run, s_zap_sock) != 0) {
            snprintf(err, err_size, "could not start the bus authenticator thread");
            return -1;
        }
        pthread_detach(s_zap_thread);
    }
    s_enabled = true;
    return 0;
}

void busauth_init_or_die(const char *service, unsigned admit, unsigned servers)
{
    char err[700];
    if (busauth_init(service, admit, servers, err, sizeof err) < 0) {
        fprintf(stderr, "portico: configuration error: %s\n", err);
        exit(2);
    }
}

int busauth_server(zsock_t *sock)
{
    pthread_mutex_lock(&s_cert_lock);
    if (!s_cert) {
        pthread_mutex_unlock(&s_cert_lock);
        return -1;
    }
    zcert_apply(s_cert, sock);
    pthread_mutex_unlock(&s_cert_lock);
    zsock_set_curve_server(sock, 1);
    zsock_set_zap_domain(sock, "portico");
    return 0;
}

int busauth_client(zsock_t *sock, const char *server, const char *as)
{
    return busauth_client_key(sock, server, NULL, as);
}

int busauth_client_key(zsock_t *sock, const char *server, const char *server_key, const char *as)
{
    int rc = -1;
    char err[700], key[41];
    zcert_t *cert = NULL;
    unsigned bit = busauth_bit(server);
    if (!s_dir[0] && getenv("PORTICO_BUS_KEYS_DIR"))
        snprintf(s_dir, sizeof s_dir, "%s", getenv("PORTICO_BUS_KEYS_DIR"));
    if (!bit || !s_dir[0] || (!s_cert && !as))
        return -1;
    int i = 0;
    while ((1u << i) != bit)
        i++;
    if (server_key && strlen(server_key) == 40)
        snprintf(key, sizeof key, "%s", server_key);
    else if (s_server_keys[i][0])
        snprintf(key, sizeof key, "%s", s_server_keys[i]);
    else if (s_load_server_key(server, key, err, sizeof err) < 0)
        goto out;
    if (as) {
        char path[1024];
        if (strchr(as, '/'))
            snprintf(path, sizeof path, "%s", as);
        else
            snprintf(path, sizeof path, "%s/%s.cert_secret", s_dir, as);
        cert = s_load_secret(path, "PORTICO_BUS_KEYS_DIR", err, sizeof err);
        if (!cert)
            goto out;
    }
    pthread_mutex_lock(&s_cert_lock);
    zcert_apply(cert ? cert : s_cert, sock);
    pthread_mutex_unlock(&s_cert_lock);
    zsock_set_curve_serverkey(sock, key);
    rc = 0;
out:
    if (rc < 0)
        log_error("could not set up the bus keys", "server=%s", server);
    zcert_destroy(&cert);
    return rc;
}

const char *busauth_peer(zframe_t *frame)
{
    const char *id = frame ? zframe_meta(frame, "User-Id") : NULL;
    unsigned bit = busauth_bit(id);
    return bit ? busauth_name(bit) : NULL;
}

int busauth_keygen(const char *dir, const char *name, char *err, size_t err_size)
{
    char pub[1024], sec[1100];
    snprintf(pub, sizeof pub, "%s/%s.cert", dir, name);
    snprintf(sec, sizeof sec, "%s_secret", pub);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, err_size, "PORTICO_BUS_KEYS_DIR: cannot create \"%s\": %s", dir, strerror(errno));
        return -1;
    }
    /* A secret file that cannot be read as one (cut short by a crash while
     * it was written) is replaced with a new pair: keeping it would stop
     * the service at every start. */
    bool have_secret = access(sec, F_OK) == 0, have_public = access(pub, F_OK) == 0;
    zcert_t *cert = have_secret ? zcert_load(sec) : NULL;
    if (cert && (!s_nonzero(zcert_secret_key(cert)) || !s_nonzero(zcert_public_key(cert))))
        zcert_destroy(&cert);
    if (have_secret && !cert) {
        log_warn("replacing an unreadable bus secret key with a new pair", "file=%s", sec);
        have_secret = false;
    }
    if (cert && have_public) {
        zcert_destroy(&cert);
        return 0;
    }
    if (!cert)
        cert = zcert_new();
    if (!cert) {
        snprintf(err, err_size, "cannot make a key pair for \"%s\"", name);
        return -1;
    }
    zcert_set_meta(cert, "service", "%s", name);
    /* Written under other names and renamed: a crash leaves the old files
     * or the new ones, never half of one. The secret goes first; a public
     * file missing next to it is made again from it. */
    char tmp[1100], tmp_sec[1200];
    snprintf(tmp, sizeof tmp, "%s/.%s.cert.new", dir, name);
    snprintf(tmp_sec, sizeof tmp_sec, "%s_secret", tmp);
    mode_t old = umask(077);
    int rc = have_secret ? zcert_save_public(cert, tmp) : zcert_save(cert, tmp);
    umask(old);
    zcert_destroy(&cert);
    if (rc == 0 && !have_secret && rename(tmp_sec, sec) < 0)
        rc = -1;
    if (rc == 0 && (chmod(tmp, 0644) < 0 || rename(tmp, pub) < 0))
        rc = -1;
    if (rc < 0) {
        snprintf(err, err_size, "cannot write \"%s\": %s", pub, strerror(errno));
        unlink(tmp);
        unlink(tmp_sec);
        return -1;
    }
    return 0;
}

int busauth_keygen_main(const char *service, int argc, char **argv)
{
    char err[700];
    const char *name = argc > 2 ? argv[2] : service;
    if (argc > 3 || strlen(name) > 64 || !s_file_service_name(name)) {
        fprintf(stderr, "usage: portico-%s bus-keygen [SERVICE[.SUFFIX]]\n", service);
        return 2;
    }
    const char *dir = getenv("PORTICO_BUS_KEYS_DIR");
    if (!dir || !*dir) {
        fprintf(stderr, "portico: configuration error: PORTICO_BUS_KEYS_DIR: required\n");
        return 2;
    }
    if (busauth_keygen(dir, name, err, sizeof err) < 0) {
        fprintf(stderr, "portico: %s\n", err);
        return 1;
    }
    return 0;
}

int busauth_server_keys(const char *server, char keys[][41], int max)
{
    unsigned bit = busauth_bit(server);
    if (!bit || !s_dir[0])
        return 0;
    pthread_mutex_lock(&s_pub_lock);
    s_refresh_keys(s_pub, &s_npub, &s_pub_ms, false);
    int n = 0;
    for (int i = 0; i < s_npub && n < max; i++) {
        if (s_pub[i].service != bit)
            continue;
        char z[41];
        zmq_z85_encode(z, s_pub[i].key, 32);
        bool dup = false;
        for (int j = 0; j < n && !dup; j++)
            dup = !strcmp(keys[j], z);
        if (!dup)
            snprintf(keys[n++], 41, "%s", z);
    }
    pthread_mutex_unlock(&s_pub_lock);
    return n;
}

/* Whether a key this server admitted when it last bound is gone from the
 * folder now; the folder as it is becomes the new reference. Under
 * s_cert_lock. */
static bool s_admitted_key_removed(void)
{
    if (!s_admit || s_nbound < 0)
        return false;
    char err[600];
    known_key_t now[MAX_KEYS];
    int n = s_load_keys(s_dir, now, MAX_KEYS, err, sizeof err);
    if (n < 0)
        return false; /* an unreadable folder keeps what was admitted */
    bool removed = false;
    for (int i = 0; i < s_nbound && !removed; i++) {
        if (!(s_bound[i].service & s_admit))
            continue;
        bool found = false;
        for (int k = 0; k < n && !found; k++)
            found = !memcmp(now[k].key, s_bound[i].key, 32);
        removed = !found;
    }
    memcpy(s_bound, now, sizeof s_bound);
    s_nbound = n;
    return removed;
}

int busauth_reload_secret(void)
{
    char err[700];
    if (!s_secret_path[0])
        return -1;
    zcert_t *cert = s_load_secret(s_secret_path, "PORTICO_BUS_SECRET_FILE", err, sizeof err);
    if (!cert) {
        char q[800];
        log_warn("could not read the bus key again; keeping the current one", "reason=%s", log_quote(err, q, sizeof q));
        return -1;
    }
    pthread_mutex_lock(&s_cert_lock);
    bool same = s_cert && !memcmp(zcert_public_key(cert), zcert_public_key(s_cert), 32);
    if (same) {
        zcert_destroy(&cert);
    } else {
        /* Sockets set up with the old one hold copies of its keys. */
        zcert_destroy(&s_cert);
        s_cert = cert;
        atomic_fetch_add(&s_cert_generation, 1);
    }
    bool removed = s_admitted_key_removed();
    pthread_mutex_unlock(&s_cert_lock);
    atomic_store(&s_zap_stale, true);
    if (removed)
        log_info("a bus key was removed: binding again ends the connections made with it", NULL);
    return same && !removed ? 0 : 1;
}

int busauth_secret_generation(void)
{
    return atomic_load(&s_cert_generation);
}
