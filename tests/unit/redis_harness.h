/*
 * A private redis-server for the unit tests that need a real one (queue, delete, sentinel,
 * webhook events): a free loopback port, started with no persistence, waited for, and stopped
 * by its pid. Static functions: each test program includes this once.
 */
#ifndef IA_TESTS_REDIS_HARNESS_H
#define IA_TESTS_REDIS_HARNESS_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* A loopback TCP port free at the time of the call. */
static inline int harness_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
        getsockname(fd, (struct sockaddr *)&a, &len))
        abort();
    close(fd);
    return ntohs(a.sin_port);
}

/*
 * A connection to 127.0.0.1:port with db selected, once the server answers (up to 10 s); NULL
 * when it never did.
 */
static inline redisContext *harness_redis_connect(int port, int db)
{
    struct timeval tv = {1, 0};
    for (int i = 0; i < 400; i++) {
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        redisReply *r = c && !c->err ? redisCommand(c, "SELECT %d", db) : NULL;
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (ok)
            return c;
        redisFree(c);
        usleep(25000);
    }
    return NULL;
}

/*
 * Starts redis-server on 127.0.0.1:port (a replica of master_port when it is not 0) and waits
 * until it answers; its pid, or -1 when it did not start.
 */
static inline pid_t harness_redis_start(int port, int master_port)
{
    char p[16], m[16];
    snprintf(p, sizeof(p), "%d", port);
    snprintf(m, sizeof(m), "%d", master_port);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO); /* the banner; errors still reach stderr */
        const char *argv[] = {"redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--loglevel", "warning",
                              master_port ? "--replicaof" : NULL, "127.0.0.1", m, NULL};
        execvp(argv[0], (char *const *)(void *)argv);
        _exit(127);
    }
    redisContext *c = pid > 0 ? harness_redis_connect(port, 0) : NULL;
    redisFree(c);
    if (pid > 0 && !c) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

/* Stops the server started as pid (SIGTERM) and reaps it. */
static inline void harness_redis_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

#endif
