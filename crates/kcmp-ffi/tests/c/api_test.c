/*
 * Tests libkcmp's C API against the real kernel: kcmp() must behave exactly
 * like syscall(SYS_kcmp, ...) (return value and errno), and kcmp_same_file()
 * and kcmp_holders() must give the documented answers and errors.
 *
 * Run by crates/kcmp-ffi/tests/c_api.rs. Prints "ok: ..." per check and
 * "FAIL: ..." on stderr per failure; exits 1 if anything failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <kcmp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (cond) {                                                           \
            printf("ok: %s\n", #cond);                                        \
        } else {                                                              \
            fprintf(stderr, "FAIL: %s:%d: %s (errno %d: %s)\n", __FILE__,     \
                    __LINE__, #cond, errno, strerror(errno));                 \
            failures++;                                                       \
        }                                                                     \
    } while (0)

#define ORDERED (-2) /* want_ret: 1 or 2 */

/*
 * Calls kcmp() and the raw syscall with the same arguments: both must give
 * the same return value and errno, and that must be the expected one.
 */
static int
same_as_syscall(const char *what, pid_t p1, pid_t p2, int type,
                unsigned long i1, unsigned long i2, int want_ret,
                int want_errno)
{
    errno = 0;
    int r = kcmp(p1, p2, type, i1, i2);
    int e = errno;
    errno = 0;
    long s = syscall(SYS_kcmp, p1, p2, type, i1, i2);
    int se = errno;
    int ok = r == s && (r != -1 || e == se);
    if (want_ret == ORDERED)
        ok = ok && (r == 1 || r == 2);
    else
        ok = ok && r == want_ret && (want_ret != -1 || e == want_errno);
    if (ok) {
        printf("ok: kcmp %s: %d (errno %d)\n", what, r, r == -1 ? e : 0);
    } else {
        fprintf(stderr,
                "FAIL: kcmp %s: kcmp() = %d errno %d, syscall() = %ld errno "
                "%d, wanted %d errno %d\n",
                what, r, e, s, se, want_ret, want_errno);
        failures++;
    }
    return r;
}

/* A child that holds copies of the parent's fds until its pipe closes. */
static pid_t
spawn_holder(int *release_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) == -1) {
        perror("pipe2");
        exit(2);
    }
    pid_t child = fork();
    if (child == -1) {
        perror("fork");
        exit(2);
    }
    if (child == 0) {
        char c;
        close(p[1]);
        alarm(60); /* never outlive a broken parent for long */
        while (read(p[0], &c, 1) == -1 && errno == EINTR)
            ;
        _exit(0);
    }
    close(p[0]);
    *release_fd = p[1];
    return child;
}

static void
release(pid_t child, int release_fd)
{
    int status;
    close(release_fd);
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "FAIL: holder child %d did not exit cleanly\n",
                (int) child);
        failures++;
    }
}

/* A pid that named a process a moment ago and now names none. */
static pid_t
reaped_pid(void)
{
    pid_t child = fork();
    if (child == -1) {
        perror("fork");
        exit(2);
    }
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0);
    return child;
}

static int
has_holder(const struct kcmp_holder *h, ssize_t n, pid_t pid, int fd)
{
    for (ssize_t i = 0; i < n; i++)
        if (h[i].pid == pid && h[i].fd == fd)
            return 1;
    return 0;
}

static void
test_kcmp(void)
{
    pid_t me = getpid();
    int a = open("/dev/null", O_RDONLY);
    int b = open("/dev/null", O_RDONLY);
    int a2 = dup(a);
    CHECK(a >= 0 && b >= 0 && a2 >= 0);

    same_as_syscall("self VM", me, me, KCMP_VM, 0, 0, 0, 0);
    same_as_syscall("self FILES", me, me, KCMP_FILES, 0, 0, 0, 0);
    same_as_syscall("dup", me, me, KCMP_FILE, a, a2, 0, 0);
    int ab = same_as_syscall("two open()s", me, me, KCMP_FILE, a, b, ORDERED, 0);
    int ba = same_as_syscall("two open()s, reversed", me, me, KCMP_FILE, b, a,
                             ORDERED, 0);
    CHECK(ab + ba == 3); /* antisymmetric: one is 1, the other 2 */
    /* No validation added: the kernel truncates fd numbers to 32 bits. */
    same_as_syscall("fd + 2^32", me, me, KCMP_FILE, (1UL << 32) + a, a, 0, 0);
    same_as_syscall("pid -1", me, -1, KCMP_VM, 0, 0, -1, ESRCH);
    same_as_syscall("pid 0", 0, me, KCMP_VM, 0, 0, -1, ESRCH);
    same_as_syscall("type KCMP_TYPES", me, me, KCMP_TYPES, 0, 0, -1, EINVAL);
    same_as_syscall("type -1", me, me, -1, 0, 0, -1, EINVAL);
    same_as_syscall("fd not open", me, me, KCMP_FILE, 1000000, a, -1, EBADF);
    same_as_syscall("reaped pid", me, reaped_pid(), KCMP_VM, 0, 0, -1, ESRCH);

    /* KCMP_EPOLL_TFD: idx2 is a pointer to struct kcmp_epoll_slot. */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int pp[2];
    CHECK(ep >= 0 && pipe2(pp, O_CLOEXEC) == 0);
    int pp2 = dup(pp[0]);
    struct epoll_event ev = {.events = EPOLLIN};
    CHECK(pp2 >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, pp[0], &ev) == 0);
    struct kcmp_epoll_slot slot = {.efd = ep, .tfd = pp[0], .toff = 0};
    same_as_syscall("epoll target", me, me, KCMP_EPOLL_TFD, pp[0],
                    (unsigned long) &slot, 0, 0);
    same_as_syscall("epoll target vs dup", me, me, KCMP_EPOLL_TFD, pp2,
                    (unsigned long) &slot, 0, 0);
    same_as_syscall("epoll target vs other file", me, me, KCMP_EPOLL_TFD, pp[1],
                    (unsigned long) &slot, ORDERED, 0);
    struct kcmp_epoll_slot missing = {.efd = ep, .tfd = pp[0], .toff = 5};
    same_as_syscall("epoll no registration", me, me, KCMP_EPOLL_TFD, pp[0],
                    (unsigned long) &missing, -1, ENOENT);
    same_as_syscall("epoll bad slot pointer", me, me, KCMP_EPOLL_TFD, pp[0], 8,
                    -1, EFAULT);
    struct kcmp_epoll_slot not_epoll = {.efd = b, .tfd = pp[0], .toff = 0};
    same_as_syscall("epoll fd not an epoll", me, me, KCMP_EPOLL_TFD, pp[0],
                    (unsigned long) &not_epoll, -1, EINVAL);
    close(pp[0]);
    close(pp[1]);
    close(pp2);

    /* Across processes: a forked child shares a's description. */
    int rel;
    pid_t child = spawn_holder(&rel);
    same_as_syscall("child shares fd", me, child, KCMP_FILE, a, a, 0, 0);
    same_as_syscall("child FILES", me, child, KCMP_FILES, 0, 0, ORDERED, 0);
    same_as_syscall("child VM", child, me, KCMP_VM, 0, 0, ORDERED, 0);
    same_as_syscall("child SIGHAND", child, me, KCMP_SIGHAND, 0, 0, ORDERED, 0);
    release(child, rel);

    close(ep);
    close(a);
    close(b);
    close(a2);
}

static void
test_same_file(void)
{
    pid_t me = getpid();
    int a = open("/dev/null", O_RDONLY);
    int b = open("/dev/null", O_RDONLY);
    int a2 = dup(a);
    CHECK(a >= 0 && b >= 0 && a2 >= 0);

    CHECK(kcmp_same_file(me, a, me, a) == 1);
    CHECK(kcmp_same_file(me, a, me, a2) == 1);
    CHECK(kcmp_same_file(me, a, me, b) == 0);
    CHECK(kcmp_same_file(me, b, me, a) == 0);

    int rel;
    pid_t child = spawn_holder(&rel);
    CHECK(kcmp_same_file(me, a, child, a2) == 1);
    CHECK(kcmp_same_file(child, b, me, a) == 0);
    release(child, rel);

    errno = 0;
    CHECK(kcmp_same_file(me, a, me, 1000000) == -1 && errno == EBADF);
    errno = 0;
    CHECK(kcmp_same_file(me, -1, me, a) == -1 && errno == EBADF); /* as kcmp(2) says for fd -1 */
    errno = 0;
    CHECK(kcmp_same_file(0, a, me, a) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(kcmp_same_file(me, a, -5, a) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(kcmp_same_file(reaped_pid(), a, me, a) == -1 && errno == ESRCH);

    close(a);
    close(b);
    close(a2);
}

static void
test_holders(void)
{
    pid_t me = getpid();
    struct kcmp_holder *h = (struct kcmp_holder *) 1;
    int a = open("/dev/null", O_RDONLY);
    int a2 = dup(a);
    CHECK(a >= 0 && a2 >= 0);

    /* The child inherits a and a2; b is opened after the fork. */
    int rel;
    pid_t child = spawn_holder(&rel);
    int b = open("/dev/null", O_RDONLY);
    CHECK(b >= 0);

    ssize_t n = kcmp_holders(me, a, &h);
    CHECK(n == 4);
    CHECK(h != NULL);
    if (n == 4 && h != NULL) {
        CHECK(has_holder(h, n, me, a));
        CHECK(has_holder(h, n, me, a2));
        CHECK(has_holder(h, n, child, a));
        CHECK(has_holder(h, n, child, a2));
        int sorted = 1;
        for (ssize_t i = 1; i < n; i++)
            if (h[i - 1].pid > h[i].pid ||
                (h[i - 1].pid == h[i].pid && h[i - 1].fd >= h[i].fd))
                sorted = 0;
        CHECK(sorted);
    }
    kcmp_holders_free(h);

    h = (struct kcmp_holder *) 1;
    n = kcmp_holders(child, a2, &h);
    CHECK(n == 4 && h != NULL && has_holder(h, n, me, a));
    kcmp_holders_free(h);

    h = (struct kcmp_holder *) 1;
    n = kcmp_holders(me, b, &h);
    CHECK(n == 1 && h != NULL && h[0].pid == me && h[0].fd == b);
    kcmp_holders_free(h);
    release(child, rel);

    errno = 0;
    CHECK(kcmp_holders(me, a, NULL) == -1 && errno == EINVAL);
    h = (struct kcmp_holder *) 1;
    errno = 0;
    CHECK(kcmp_holders(me, 1000000, &h) == -1 && errno == EBADF && h == NULL);
    h = (struct kcmp_holder *) 1;
    errno = 0;
    CHECK(kcmp_holders(me, -1, &h) == -1 && errno == EBADF && h == NULL);
    h = (struct kcmp_holder *) 1;
    errno = 0;
    CHECK(kcmp_holders(0, a, &h) == -1 && errno == EINVAL && h == NULL);
    h = (struct kcmp_holder *) 1;
    errno = 0;
    CHECK(kcmp_holders(reaped_pid(), a, &h) == -1 && errno == ESRCH && h == NULL);
    kcmp_holders_free(NULL);

    close(a);
    close(a2);
    close(b);
}

/*
 * Makes kcmp(2) fail with err in this process and its children, with a
 * seccomp filter (as Docker's default profile or a sandbox would).
 */
static void
deny_kcmp(int err)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_kcmp, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {
        .len = sizeof filter / sizeof filter[0],
        .filter = filter,
    };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == -1) {
        perror("installing the seccomp filter");
        exit(2);
    }
}

/*
 * kcmp(2) refused by a seccomp filter: kcmp() reports the filter's errno
 * like the raw syscall, and kcmp_same_file() and kcmp_holders() still
 * answer through the library's fallbacks (F_DUPFD_QUERY or epoll within
 * this process, pidfd_getfd for a child). Must run in a fresh process: the library probes
 * kcmp once per process.
 */
static void
test_fallback(int err)
{
    deny_kcmp(err);
    pid_t me = getpid();
    int p[2], q[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0 && pipe2(q, O_CLOEXEC) == 0);
    int p2 = dup(p[0]);
    CHECK(p2 >= 0);

    same_as_syscall("filtered self VM", me, me, KCMP_VM, 0, 0, -1, err);
    same_as_syscall("filtered dup", me, me, KCMP_FILE, p[0], p2, -1, err);

    CHECK(kcmp_same_file(me, p[0], me, p2) == 1);
    CHECK(kcmp_same_file(me, p[0], me, p[1]) == 0);
    CHECK(kcmp_same_file(me, p[0], me, q[0]) == 0);
    errno = 0;
    CHECK(kcmp_same_file(me, p[0], me, 1000000) == -1 && errno == EBADF);

    /* Another process: the child (our descendant) inherited p[0] and p2. */
    int rel;
    pid_t child = spawn_holder(&rel);
    CHECK(kcmp_same_file(me, p[0], child, p2) == 1);
    CHECK(kcmp_same_file(child, p[0], me, q[0]) == 0);

    /* kcmp_holders without kcmp: exact through the same fallbacks. */
    struct kcmp_holder *h = NULL;
    ssize_t n = kcmp_holders(me, p[0], &h);
    CHECK(n == 4 && h != NULL && has_holder(h, n, me, p[0]) &&
          has_holder(h, n, me, p2) && has_holder(h, n, child, p[0]) &&
          has_holder(h, n, child, p2));
    kcmp_holders_free(h);
    n = kcmp_holders(me, q[1], &h);
    CHECK(n == 2 && h != NULL && has_holder(h, n, me, q[1]) &&
          has_holder(h, n, child, q[1]));
    kcmp_holders_free(h);
    int r[2]; /* opened after the fork: only this process holds it */
    CHECK(pipe2(r, O_CLOEXEC) == 0);
    n = kcmp_holders(me, r[0], &h);
    CHECK(n == 1 && h != NULL && h[0].pid == me && h[0].fd == r[0]);
    kcmp_holders_free(h);
    close(r[0]);
    close(r[1]);
    release(child, rel);

    close(p[0]);
    close(p[1]);
    close(p2);
    close(q[0]);
    close(q[1]);
}

int
main(int argc, char *argv[])
{
    const char *only = argc > 1 ? argv[1] : "all";
    if (!strcmp(only, "all") || !strcmp(only, "kcmp"))
        test_kcmp();
    if (!strcmp(only, "all") || !strcmp(only, "same_file"))
        test_same_file();
    if (!strcmp(only, "all") || !strcmp(only, "holders"))
        test_holders();
    if (!strcmp(only, "fallback-enosys"))
        test_fallback(ENOSYS);
    if (!strcmp(only, "fallback-eperm"))
        test_fallback(EPERM);
    CHECK(sizeof(struct kcmp_holder) == 8);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
