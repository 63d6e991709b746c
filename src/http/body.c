/*
 * Request bodies written straight from libevent's buffer to a file: the chains are handed to
 * writev() as they are, so a body is never copied into one contiguous block first. The body is
 * left in its buffer, to be freed with the request by the loop that read it: its chains come from
 * that loop thread's malloc arena, and a pool thread freeing them (4 KiB each, 4096 for a 16 MiB
 * tus chunk) takes that arena's lock as often, so the loop, allocating its next reads and
 * answers, waited for the pool thread (and for the CPU that thread was waiting for).
 */
#include "http/internal.h"

#include <errno.h>
#include <sys/uio.h>

/* Chains handed to one writev() (libevent's own evbuffer_write() takes 128). */
#define HTTP_BODY_WRITE_IOVECS 256

size_t http_request_body_length(struct http_request *req)
{
    return evbuffer_get_length(evhttp_request_get_input_buffer(req->ev));
}

bool http_request_body_to_fd(struct http_request *req, int fd)
{
    return http_evbuffer_to_fd(evhttp_request_get_input_buffer(req->ev), fd);
}

/* Writes the chains at pos (up to HTTP_BODY_WRITE_IOVECS of them); writev()'s result. */
static ssize_t write_chains(struct evbuffer *in, struct evbuffer_ptr *pos, int fd)
{
    struct evbuffer_iovec v[HTTP_BODY_WRITE_IOVECS];
    struct iovec iov[HTTP_BODY_WRITE_IOVECS];
    int n = evbuffer_peek(in, -1, pos, v, HTTP_BODY_WRITE_IOVECS);
    if (n > HTTP_BODY_WRITE_IOVECS)
        n = HTTP_BODY_WRITE_IOVECS;
    for (int i = 0; i < n; i++)
        iov[i] = (struct iovec){.iov_base = v[i].iov_base, .iov_len = v[i].iov_len};
    return n > 0 ? writev(fd, iov, n) : 0;
}

bool http_evbuffer_to_fd(struct evbuffer *in, int fd)
{
    size_t left = evbuffer_get_length(in);
    struct evbuffer_ptr pos;
    if (evbuffer_ptr_set(in, &pos, 0, EVBUFFER_PTR_SET) < 0)
        return left == 0;
    while (left > 0) {
        ssize_t n = write_chains(in, &pos, fd);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return false;
        }
        left -= (size_t)n;
        if (left > 0 && evbuffer_ptr_set(in, &pos, (size_t)n, EVBUFFER_PTR_ADD) < 0) {
            errno = EIO;
            return false;
        }
    }
    return true;
}
