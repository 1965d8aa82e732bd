/*
 * kcmp-cost: what one kcmp(2) KCMP_FILE comparison costs on this machine,
 * for the benchmark suite's floors (issue 11).
 *
 * Two child processes hold the same 64 open files (pipes and /dev/null,
 * inherited: every comparison of fd i in one child with fd j in the other
 * is a real one, between two other processes, as in a scan). The parent
 * compares their fds, first on one thread, then on THREADS threads at
 * once (each its own pairs), and prints the nanoseconds per call seen by
 * one thread; then KCMP_VM of the two children (what the process kinds
 * compare), on one thread:
 *
 *   kcmp-cost [CALLS] [THREADS]     (defaults: 400000 calls, 2 threads)
 *   {"one_thread_ns":X,"threads":N,"per_thread_ns":X,"vm_one_thread_ns":X}
 *
 * `per_thread_ns` is the cost when every core compares at once, what a
 * scan's workers pay: a lower bound of a workload's grouping time on N
 * cores is bound_calls * per_thread_ns / N.
 *
 * Build: cc -O2 -pthread -o kcmp-cost bench/kcmp-cost.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KCMP_FILE 0
#define KCMP_VM 1
#define FILES 64

static pid_t child[2];
static int fds[FILES];
static long calls_per_thread;
static int kind = KCMP_FILE;

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Compares fd i of one child with fd (i + k) of the other: mostly unequal
 * descriptions, as in a search among representatives. */
static void *compare(void *arg) {
    long k = (long)arg, sum = 0;
    for (long n = 0; n < calls_per_thread; n++) {
        int i = n % FILES, j = (n + k) % FILES;
        long r = syscall(SYS_kcmp, child[0], child[1], kind, fds[i], fds[j]);
        if (r < 0) {
            perror("kcmp");
            exit(1);
        }
        sum += r;
    }
    return (void *)sum;
}

/* One copy of a child's fd as the engine takes it, per call (ns). */
static double copies(long n) {
    int pidfd = syscall(SYS_pidfd_open, child[0], 0);
    int dir = open("/", O_PATH | O_DIRECTORY);
    if (pidfd < 0 || dir < 0) {
        perror("pidfd_open");
        exit(1);
    }
    double start = now_ns();
    for (long k = 0; k < n; k++) {
        int own = syscall(SYS_pidfd_getfd, pidfd, fds[k % FILES], 0);
        struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        struct stat st;
        if (own < 0) {
            perror("pidfd_getfd");
            exit(1);
        }
        fcntl(own, F_OFD_GETLK, &lk);
        fstat(dir, &st);
        close(own);
    }
    double per = (now_ns() - start) / n;
    close(pidfd);
    close(dir);
    return per;
}

/* One read of a child's /proc/PID/fdinfo/N, per call (ns). */
static double fdinfo_reads(long n) {
    char path[64], buf[4096];
    double start = now_ns();
    for (long k = 0; k < n; k++) {
        snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", child[0], fds[k % FILES]);
        int f = open(path, O_RDONLY | O_CLOEXEC);
        if (f < 0 || read(f, buf, sizeof buf) <= 0) {
            perror("fdinfo");
            exit(1);
        }
        close(f);
    }
    return (now_ns() - start) / n;
}

static double run(int threads) {
    pthread_t t[64];
    double start = now_ns();
    for (long i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, compare, (void *)(i * 7 + 1));
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    return (now_ns() - start) / calls_per_thread;
}

int main(int argc, char **argv) {
    calls_per_thread = argc > 1 ? atol(argv[1]) : 400000;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    if (calls_per_thread <= 0 || threads < 1 || threads > 64) {
        fprintf(stderr, "usage: kcmp-cost [CALLS] [THREADS (1-64)]\n");
        return 2;
    }
    for (int i = 0; i < FILES; i += 2) {
        int p[2];
        if (i % 8 == 0) {
            fds[i] = open("/dev/null", O_RDONLY);
            fds[i + 1] = open("/dev/null", O_WRONLY);
        } else if (pipe(p) == 0) {
            fds[i] = p[0];
            fds[i + 1] = p[1];
        }
        if (fds[i] < 0 || fds[i + 1] < 0) {
            perror("open");
            return 1;
        }
    }
    for (int c = 0; c < 2; c++) {
        child[c] = fork();
        if (child[c] < 0) {
            perror("fork");
            return 1;
        }
        if (child[c] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            for (;;)
                pause();
        }
    }
    run(1); /* warm-up */
    double one = run(1);
    double many = run(threads);
    kind = KCMP_VM;
    double vm = run(1);
    long few = calls_per_thread / 4 > 0 ? calls_per_thread / 4 : 1;
    double copy = copies(few);
    double fdinfo = fdinfo_reads(few);
    for (int c = 0; c < 2; c++) {
        kill(child[c], SIGKILL);
        waitpid(child[c], NULL, 0);
    }
    printf("{\"one_thread_ns\":%.1f,\"threads\":%d,\"per_thread_ns\":%.1f,\"vm_one_thread_ns\":%.1f,"
           "\"copy_ns\":%.1f,\"fdinfo_ns\":%.1f}\n",
           one, threads, many, vm, copy, fdinfo);
    return 0;
}
