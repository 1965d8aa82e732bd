/*
 * libkcmp's kcmp() against a raw syscall(SYS_kcmp, ...): the wrapper must
 * cost no more than 5 % over a loop of a million calls.
 *
 * Run:   cargo xtask bench-c            (builds release, stages libkcmp,
 *                                        compiles this file, runs it)
 * By hand against an install:
 *        cc -O2 kcmp_vs_syscall.c $(pkg-config --cflags --libs kcmp) -o bench
 *        ./bench [CALLS [ROUNDS]]
 *
 * Both loops make the same call, kcmp(self, self, KCMP_FILE, fd, fd) on an
 * fd of /dev/null. Each round times CALLS calls of each variant, run as
 * CHUNKS interleaved slices (which variant goes first alternates), so that
 * changes in machine load hit both alike; the report gives per-round
 * times, the median and the minimum.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 101
#define CHUNKS 20

static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static __attribute__((noinline)) double
loop_lib(pid_t me, int fd, long calls)
{
    double t0 = now_ns();
    for (long i = 0; i < calls; i++) {
        if (kcmp(me, me, KCMP_FILE, fd, fd) != 0) {
            perror("kcmp");
            exit(2);
        }
    }
    return (now_ns() - t0) / calls;
}

static __attribute__((noinline)) double
loop_raw(pid_t me, int fd, long calls)
{
    double t0 = now_ns();
    for (long i = 0; i < calls; i++) {
        if (syscall(SYS_kcmp, me, me, KCMP_FILE, fd, fd) != 0) {
            perror("syscall(SYS_kcmp)");
            exit(2);
        }
    }
    return (now_ns() - t0) / calls;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
    double s[MAX_ROUNDS];
    for (int i = 0; i < n; i++)
        s[i] = v[i];
    qsort(s, n, sizeof s[0], cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double
minimum(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        if (v[i] < m)
            m = v[i];
    return m;
}

int
main(int argc, char *argv[])
{
    long calls = argc > 1 ? atol(argv[1]) : 1000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 7;
    double lib[MAX_ROUNDS], raw[MAX_ROUNDS];
    pid_t me = getpid();
    int fd = open("/dev/null", O_RDONLY);

    if (fd == -1) {
        perror("open /dev/null");
        return 2;
    }
    if (calls < 1 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: %s [CALLS>0 [ROUNDS 1..%d]]\n", argv[0],
                MAX_ROUNDS);
        return 2;
    }

    /* Warm up caches, the PLT and the CPU frequency. */
    loop_lib(me, fd, calls / 10 + 1);
    loop_raw(me, fd, calls / 10 + 1);

    long chunk = calls / CHUNKS > 0 ? calls / CHUNKS : 1;
    long nchunks = (calls + chunk - 1) / chunk;
    for (int r = 0; r < rounds; r++) {
        double lt = 0, rt = 0; /* ns in total */
        for (long c = 0; c < nchunks; c++) {
            long n = c == nchunks - 1 ? calls - c * chunk : chunk;
            if ((r + c) % 2 == 0) {
                lt += loop_lib(me, fd, n) * n;
                rt += loop_raw(me, fd, n) * n;
            } else {
                rt += loop_raw(me, fd, n) * n;
                lt += loop_lib(me, fd, n) * n;
            }
        }
        lib[r] = lt / calls;
        raw[r] = rt / calls;
        printf("round %d: kcmp() %.1f ns/call, syscall() %.1f ns/call\n", r + 1,
               lib[r], raw[r]);
    }

    double lm = median(lib, rounds), rm = median(raw, rounds);
    double ln = minimum(lib, rounds), rn = minimum(raw, rounds);
    double over_med = (lm / rm - 1) * 100, over_min = (ln / rn - 1) * 100;
    printf("calls per loop: %ld, rounds: %d\n", calls, rounds);
    printf("median: kcmp() %.1f ns/call, syscall() %.1f ns/call, overhead %+.2f %%\n",
           lm, rm, over_med);
    printf("min:    kcmp() %.1f ns/call, syscall() %.1f ns/call, overhead %+.2f %%\n",
           ln, rn, over_min);
    printf("budget 5 %%: %s\n", over_med <= 5.0 ? "met" : "EXCEEDED");
    return 0;
}
