/* A module with thread-local storage, loaded by tls_exit: its block is allocated on first use. */
void *tls_exit_touch(void);

static __thread char tls_exit_block[8];

void *tls_exit_touch(void)
{
    tls_exit_block[0] = 1;
    return tls_exit_block;
}
