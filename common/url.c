#include "url.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void s_why(char *why, size_t why_size, const char *text)
{
    if (why && why_size)
        snprintf(why, why_size, "%s", text);
}

int url_normalize_base(const char *in, char *out, size_t out_size, char *why, size_t why_size)
{
    int rc = -1;
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *user = NULL, *password = NULL, *query = NULL,
         *fragment = NULL;
    if (!u)
        goto out;
    if (!in || !*in) {
        s_why(why, why_size, "Enter the URL, for example https://git.example.com/bitbucket.");
        goto out;
    }
    if (strlen(in) > 2000) {
        s_why(why, why_size, "The URL is too long.");
        goto out;
    }
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f || *p == '\\') {
            s_why(why, why_size, "The URL contains spaces, backslashes or control characters.");
            goto out;
        }
        if (*p >= 0x80) {
            s_why(why, why_size,
                  "The URL contains characters outside ASCII: use the host's punycode form and "
                  "percent-encode the path.");
            goto out;
        }
    }
    if (strncasecmp(in, "http://", 7) != 0 && strncasecmp(in, "https://", 8) != 0) {
        s_why(why, why_size, "The URL must start with http:// or https://.");
        goto out;
    }
    const char *authority = strstr(in, "://") + 3;
    size_t alen = strcspn(authority, "/");
    if (memchr(authority, '%', alen)) {
        s_why(why, why_size, "The host name must not contain percent-encoded characters.");
        goto out;
    }
    if (strstr(in, ":///")) {
        s_why(why, why_size, "The URL needs a host name.");
        goto out;
    }
    if (curl_url_set(u, CURLUPART_URL, in, 0) != CURLUE_OK) {
        s_why(why, why_size, "This is not a well-formed URL.");
        goto out;
    }
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    curl_url_get(u, CURLUPART_PASSWORD, &password, 0);
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0);
    if (!scheme || !host || !*host) {
        s_why(why, why_size, "The URL needs a host name.");
        goto out;
    }
    if (user || password) {
        s_why(why, why_size, "The URL must not contain a user name or password.");
        goto out;
    }
    if (query || fragment || strchr(in, '?') || strchr(in, '#')) {
        s_why(why, why_size, "The URL must not contain a query (?) or fragment (#).");
        goto out;
    }
    for (char *p = host; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    /* Keep the context path, but never a doubled slash that would give //rest. */
    char clean[2048] = "";
    size_t c = 0;
    for (const char *p = path ? path : ""; *p && c + 1 < sizeof clean; p++) {
        if (*p == '/' && c > 0 && clean[c - 1] == '/')
            continue;
        clean[c++] = *p;
    }
    clean[c] = '\0';
    if (c > 0 && clean[c - 1] == '/')
        clean[--c] = '\0';
    if (strstr(clean, "/../") || strstr(clean, "/./") || (c >= 3 && strcmp(clean + c - 3, "/..") == 0) ||
        (c >= 2 && strcmp(clean + c - 2, "/.") == 0)) {
        s_why(why, why_size, "The URL path must not contain . or .. segments.");
        goto out;
    }
    int n = snprintf(out, out_size, "%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "", clean);
    if (n < 0 || (size_t)n >= out_size) {
        s_why(why, why_size, "The URL is too long.");
        goto out;
    }
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(user);
    curl_free(password);
    curl_free(query);
    curl_free(fragment);
    curl_url_cleanup(u);
    return rc;
}

bool url_is_local_path(const char *s)
{
    if (!s || s[0] != '/' || s[1] == '/' || s[1] == '\\')
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '\\')
            return false;
    return strlen(s) <= 1024;
}

int url_encode(const char *in, char *out, size_t out_size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            if (o + 1 >= out_size)
                return -1;
            out[o++] = (char)*p;
        } else {
            if (o + 3 >= out_size)
                return -1;
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    if (o >= out_size)
        return -1;
    out[o] = '\0';
    return (int)o;
}

static int s_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int url_decode(const char *in, bool plus_is_space, char *out, size_t out_size)
{
    size_t o = 0;
    for (const char *p = in; *p; p++) {
        char c = *p;
        if (c == '%') {
            int hi = p[1] ? s_hexval(p[1]) : -1;
            int lo = hi >= 0 && p[2] ? s_hexval(p[2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi * 16 + lo);
            p += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (o + 1 >= out_size)
            return -1;
        out[o++] = c;
    }
    if (o >= out_size)
        return -1;
    out[o] = '\0';
    return (int)o;
}

bool url_is_https(const char *url)
{
    return url && strncasecmp(url, "https://", 8) == 0;
}
