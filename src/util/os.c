/* Small wrappers over system calls (see os.h). */
#include "util/os.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

bool os_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

int64_t os_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t os_monotonic_ms(void)
{
    return os_monotonic_ns() / 1000000;
}

static atomic_int known_pid; /* 0: not looked up in this process yet */
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void forget_pid(void)
{
    atomic_store_explicit(&known_pid, 0, memory_order_relaxed);
}

static void watch_forks(void)
{
    pthread_atfork(NULL, NULL, forget_pid); /* runs in the child of every fork() */
}

pid_t os_pid(void)
{
    pthread_once(&pid_once, watch_forks);
    int pid = atomic_load_explicit(&known_pid, memory_order_relaxed);
    if (pid == 0) {
        pid = (int)getpid();
        atomic_store_explicit(&known_pid, pid, memory_order_relaxed);
    }
    return (pid_t)pid;
}
