/*
 * kcmp-grouper: the CRIU-style baseline of the benchmark suite (issue 11).
 *
 * Single-threaded, no heuristics: stat every fd of the given processes
 * through /proc/PID/fd/N, bucket the fds by (st_dev, st_ino), and within
 * each bucket place every fd by binary search among one representative per
 * open file description, the representatives kept sorted in kcmp(2)'s
 * order (KCMP_FILE). Every membership rests on a kcmp that answered 0
 * against its representative, so the grouping is exact, like the scan's.
 *
 * It also reports the information bound of any comparison-based grouping
 * of what it saw: per bucket of M fds and D distinct descriptions,
 * log2(D!) comparisons to order the descriptions plus one comparison for
 * each of the M - D further members. "bound_no_sockets" leaves out socket
 * inodes: a socket inode has exactly one open file description, so a tool
 * that knows the fd's type needs no comparison there at all.
 *
 *   kcmp-grouper PID...      prints one line of JSON:
 *   {"tasks":N,"fds":N,"buckets":N,"descriptions":N,"kcmp_calls":N,
 *    "bound":X,"bound_no_sockets":X,"vanished":N,"elapsed_ms":X,"stat_ms":X,"group_ms":X}
 *
 * Build: cc -O2 -o kcmp-grouper bench/grouper.c -lm
 *
 * statx() uses AT_STATX_DONT_SYNC: a network filesystem answers from its
 * cache rather than asking the server (a baseline must not hang on a dead
 * mount). A process or fd that disappears while it runs is left out
 * (counted in "vanished").
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_kcmp
#define SYS_kcmp 312
#endif
#define KCMP_FILE 0

struct rec {
    uint64_t dev;
    uint64_t ino;
    int sock;
    int pid;
    int fd;
};

static struct rec *recs;
static size_t nrecs, caprecs;
static uint64_t kcmp_calls, vanished;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void push(const struct rec *r)
{
    if (nrecs == caprecs) {
        caprecs = caprecs ? caprecs * 2 : 4096;
        recs = realloc(recs, caprecs * sizeof *recs);
        if (!recs) {
            fprintf(stderr, "kcmp-grouper: out of memory (%zu fds)\n", nrecs);
            exit(1);
        }
    }
    recs[nrecs++] = *r;
}

/* Lists /proc/PID/fd and stats every entry. Returns 0, or -1 if the
 * process could not be listed (gone or not accessible). */
static int stat_process(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int dfd = dirfd(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        struct statx stx;
        /* Follows the magic link: the open file's own inode. */
        if (statx(dfd, de->d_name, AT_STATX_DONT_SYNC, STATX_INO | STATX_TYPE, &stx) != 0) {
            vanished++;
            continue;
        }
        struct rec r = {
            .dev = ((uint64_t)stx.stx_dev_major << 32) | stx.stx_dev_minor,
            .ino = stx.stx_ino,
            .sock = S_ISSOCK(stx.stx_mode),
            .pid = pid,
            .fd = atoi(de->d_name),
        };
        push(&r);
    }
    closedir(d);
    return 0;
}

static int by_key(const void *a, const void *b)
{
    const struct rec *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    return (x->fd > y->fd) - (x->fd < y->fd);
}

/* kcmp(KCMP_FILE) of a against b: -1 (a first), 0 (same), 1 (b first),
 * 2 (error: one side vanished). */
static int order(const struct rec *a, const struct rec *b)
{
    kcmp_calls++;
    long r = syscall(SYS_kcmp, a->pid, b->pid, KCMP_FILE, a->fd, b->fd);
    switch (r) {
    case 0:
        return 0;
    case 1:
        return -1;
    case 2:
        return 1;
    default:
        return 2;
    }
}

/* Groups one bucket: representatives sorted in kcmp order, each member
 * placed by binary search. Returns the number of descriptions. */
static size_t group_bucket(const struct rec *b, size_t m, const struct rec **reps)
{
    size_t nreps = 0;
    for (size_t i = 0; i < m; i++) {
        size_t lo = 0, hi = nreps;
        int found = 0, lost = 0;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = order(&b[i], reps[mid]);
            if (c == 0) {
                found = 1;
                break;
            } else if (c < 0) {
                hi = mid;
            } else if (c > 0 && c != 2) {
                lo = mid + 1;
            } else {
                lost = 1;
                break;
            }
        }
        if (lost) {
            vanished++;
            continue;
        }
        if (!found) {
            memmove(&reps[lo + 1], &reps[lo], (nreps - lo) * sizeof *reps);
            reps[lo] = &b[i];
            nreps++;
        }
    }
    return nreps;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fprintf(argc < 2 ? stderr : stdout, "usage: kcmp-grouper PID...\n");
        return argc < 2 ? 2 : 0;
    }
    double t0 = now_ms();
    size_t tasks = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        long pid = strtol(argv[i], &end, 10);
        if (*end || pid <= 0 || pid > 0x3fffffff) {
            fprintf(stderr, "kcmp-grouper: %s is not a pid\n", argv[i]);
            return 2;
        }
        if (stat_process((int)pid) == 0)
            tasks++;
    }
    double t1 = now_ms();
    qsort(recs, nrecs, sizeof *recs, by_key);
    const struct rec **reps = malloc((nrecs + 1) * sizeof *reps);
    if (!reps) {
        fprintf(stderr, "kcmp-grouper: out of memory\n");
        return 1;
    }
    size_t buckets = 0, descs = 0;
    double bound = 0, bound_ns = 0;
    for (size_t i = 0; i < nrecs;) {
        size_t j = i + 1;
        while (j < nrecs && recs[j].dev == recs[i].dev && recs[j].ino == recs[i].ino)
            j++;
        size_t m = j - i;
        size_t d = m == 1 ? 1 : group_bucket(&recs[i], m, reps);
        buckets++;
        descs += d;
        /* log2(D!) to order D descriptions, one call per further member. */
        double b = lgamma((double)d + 1.0) / log(2.0) + (double)(m - d);
        bound += b;
        if (!recs[i].sock)
            bound_ns += b;
        i = j;
    }
    double t2 = now_ms();
    printf("{\"tasks\":%zu,\"fds\":%zu,\"buckets\":%zu,\"descriptions\":%zu,"
           "\"kcmp_calls\":%llu,\"bound\":%.0f,\"bound_no_sockets\":%.0f,\"vanished\":%llu,"
           "\"elapsed_ms\":%.2f,\"stat_ms\":%.2f,\"group_ms\":%.2f}\n",
           tasks, nrecs, buckets, descs, (unsigned long long)kcmp_calls, bound, bound_ns,
           (unsigned long long)vanished, t2 - t0, t1 - t0, t2 - t1);
    free(reps);
    free(recs);
    return 0;
}
