/*
 * A server of http/ for the unit tests that talk to one over loopback (conn, head, offload,
 * server): made from the test's options, run on its own thread, stopped and joined once, and
 * connected to with a plain socket. Static functions: each test program includes this once.
 */
#ifndef IA_TESTS_HTTP_HARNESS_H
#define IA_TESTS_HTTP_HARNESS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"

struct harness_http {
    struct http_server *srv;
    pthread_t runner;
    bool running; /* the runner thread is not joined yet */
};

static void *harness_http_run(void *arg)
{
    http_server_run(arg);
    return NULL;
}

/* Makes the server from o and runs it on a new thread; -1 (with the reason on stderr) when not. */
static inline int harness_http_start(struct harness_http *h, const struct http_server_opts *o)
{
    char err[256] = "";
    h->srv = http_server_new(o, err, sizeof(err));
    if (!h->srv) {
        fprintf(stderr, "http_server_new: %s\n", err);
        return -1;
    }
    h->running = pthread_create(&h->runner, NULL, harness_http_run, h->srv) == 0;
    return h->running ? 0 : -1;
}

/* Waits for the server's thread (after http_server_stop()), once; pthread_join's result. */
static inline int harness_http_join(struct harness_http *h)
{
    if (!h->running)
        return 0;
    h->running = false;
    return pthread_join(h->runner, NULL);
}

/* Stops the server, waits for its thread if that was not done yet, and frees the server. */
static inline void harness_http_free(struct harness_http *h)
{
    if (h->running)
        http_server_stop(h->srv);
    harness_http_join(h);
    http_server_free(h->srv);
    h->srv = NULL;
}

/* A socket connected to the server on 127.0.0.1; -1 when the connection failed. */
static inline int harness_http_connect(const struct harness_http *h)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)http_server_port(h->srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Reads until the server closes (at most 64 KiB), closes fd; the answer as a string that the
 * caller frees, its length in *len when len is not NULL. */
static inline char *harness_http_read_all_len(int fd, size_t *len)
{
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        abort();
    ssize_t n;
    while ((n = read(fd, buf + got, cap - got)) > 0)
        got += (size_t)n;
    close(fd);
    buf[got] = '\0';
    if (len)
        *len = got;
    return buf;
}

static inline char *harness_http_read_all(int fd) { return harness_http_read_all_len(fd, NULL); }

/* Waits (without a deadline: the test's own timeout bounds it) until *v reaches want. */
static inline void harness_wait_for(atomic_int *v, int want)
{
    while (atomic_load(v) < want) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* A handler that answers every request with "body=<length of the body it received>". */
static inline void harness_http_body_size_handler(struct http_request *req, void *ctx)
{
    (void)ctx;
    char out[64];
    int n = snprintf(out, sizeof(out), "body=%zu", http_request_body_length(req));
    http_reply_body(req, 200, "text/plain", out, (size_t)n);
}

#endif
