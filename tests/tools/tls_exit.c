/*
 * tls_exit MODULE: makes the dynamic TLS block of MODULE land at page offset 16, then exits, so
 * that LeakSanitizer's check at exit meets the block src/sanitizer_options.c is about. Exits 0
 * when the check passes, 2 when the block could not be placed (the test proves nothing then),
 * and with LeakSanitizer's status when its tracer dies.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define PAGE 4096
#define AIM 16          /* the page offset the runtime mistakes for an old glibc's header */
#define CHUNK 32        /* an 8-byte allocation's step in ASan's smallest size class */
#define MAX_CHUNKS 1024 /* more than a page of them */

int main(int argc, char **argv)
{
    static void *kept[MAX_CHUNKS];
    if (argc != 2) {
        fprintf(stderr, "usage: tls_exit MODULE\n");
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    void *(*touch)(void);
    *(void **)&touch = h ? dlsym(h, "tls_exit_touch") : NULL;
    if (!touch) {
        fprintf(stderr, "tls_exit: %s\n", dlerror());
        return 2;
    }
    /* Small chunks come one after the other: stop when the next one starts at AIM. */
    int n = 0;
    while (n < MAX_CHUNKS) {
        kept[n] = malloc(8);
        if (((uintptr_t)kept[n++] + CHUNK) % PAGE == AIM)
            break;
    }
    uintptr_t block = (uintptr_t)touch(); /* glibc allocates the block here */
    printf("tls block at page offset %lu after %d chunks\n", (unsigned long)(block % PAGE), n);
    for (int i = 0; i < n; i++)
        free(kept[i]);
    return block % PAGE == AIM ? 0 : 2;
}
