/*
 * Defaults of the sanitizer runtime, built into every program of the sanitizer build only
 * (CMakeLists.txt adds this file to each executable when IA_SANITIZE is on). LSAN_OPTIONS in the
 * environment still override them.
 *
 * intercept_tls_get_addr=0. The __tls_get_addr interceptor of GCC 12's runtime (libasan 8; LLVM
 * up to 16 alike) takes a dynamic TLS block that starts at page offset 16 for a glibc <= 2.24
 * block and reads its size and start from the two words before it. Since glibc 2.25 the block is
 * a plain malloc chunk, so those words are ASan's chunk header, and LeakSanitizer's scan at exit
 * starts reading at a small bogus address: "Tracer caught signal 11", exit status 1, in about
 * one exit of 128 where a live thread has such a block (the worker's main thread gets one at
 * exit, for GnuTLS, which libcurl loads). Without the interceptor no leak goes unseen and none is
 * invented: LeakSanitizer still reaches those blocks from the thread's TLS through glibc's DTV.
 * tests/tools/tls_exit.c puts a block at that offset and must exit 0.
 */
const char *__lsan_default_options(void);

const char *__lsan_default_options(void) { return "intercept_tls_get_addr=0"; }
