/*
 * Request bodies written straight from libevent's buffer to a file: the chains are handed to
 * writev() as they are, so a body is never copied into one contiguous block first.
 */
#include "http/internal.h"

#include <errno.h>

size_t http_request_body_length(struct http_request *req)
{
    return evbuffer_get_length(evhttp_request_get_input_buffer(req->ev));
}

bool http_request_body_to_fd(struct http_request *req, int fd)
{
    return http_evbuffer_to_fd(evhttp_request_get_input_buffer(req->ev), fd);
}

bool http_evbuffer_to_fd(struct evbuffer *in, int fd)
{
    while (evbuffer_get_length(in) > 0) {
        int n = evbuffer_write(in, fd); /* drains what it wrote */
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return false;
        }
    }
    return true;
}
