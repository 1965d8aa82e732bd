/*
 * List the holders of a file descriptor: every (pid, fd) that refers to the
 * same open file description as FD of PID. (The example of kcmp(3).)
 *
 * Build: cc kcmp-holders.c $(pkg-config --cflags --libs kcmp)
 * Usage: ./a.out PID FD
 */
#include <kcmp.h>
#include <stdio.h>
#include <stdlib.h>

int
main(int argc, char *argv[])
{
    struct kcmp_holder *h;
    ssize_t n;

    if (argc != 3) {
        fprintf(stderr, "usage: %s PID FD\n", argv[0]);
        return 2;
    }
    n = kcmp_holders(atoi(argv[1]), atoi(argv[2]), &h);
    if (n == -1) {
        perror("kcmp_holders");
        return 2;
    }
    for (ssize_t i = 0; i < n; i++)
        printf("%d %d\n", (int) h[i].pid, h[i].fd);
    kcmp_holders_free(h);
    return 0;
}
