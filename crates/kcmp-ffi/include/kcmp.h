/*
 * kcmp.h - libkcmp, the C wrapper glibc lacks for kcmp(2).
 *
 * Link with: cc prog.c $(pkg-config --cflags --libs kcmp)
 * Manual:    kcmp(3), kcmp(2)
 *
 * Ownership rules, in short:
 *   - kcmp() and kcmp_same_file() allocate nothing and keep no state; every
 *     function is thread-safe and reports errors through errno.
 *   - kcmp_holders() allocates the array it stores in *out; the caller owns
 *     it and releases it with kcmp_holders_free() (never with free() alone,
 *     so the library may change its allocator).
 *   - No function keeps a pointer the caller passed in.
 */
#ifndef KCMP_H
#define KCMP_H

#include <linux/kcmp.h> /* KCMP_FILE, KCMP_VM, ..., struct kcmp_epoll_slot */
#include <sys/types.h>  /* pid_t, ssize_t */

#ifdef __cplusplus
extern "C" {
#endif

/*
 * kcmp - the kcmp(2) system call, exactly.
 *
 * Compares a kernel resource of two processes (or threads): type is one of
 * KCMP_FILE, KCMP_VM, KCMP_FILES, KCMP_FS, KCMP_SIGHAND, KCMP_IO,
 * KCMP_SYSVSEM, KCMP_EPOLL_TFD. For KCMP_FILE idx1 and idx2 are fds in pid1
 * and pid2; for KCMP_EPOLL_TFD idx1 is an fd in pid1 and idx2 the address of
 * a struct kcmp_epoll_slot; the other types ignore them.
 *
 * Returns what syscall(SYS_kcmp, ...) returns, with no validation added:
 *   0   the objects are the same,
 *   1   the first orders before the second,
 *   2   the first orders after the second,
 *  -1   error, errno set by the kernel (ESRCH, EPERM, EBADF, EINVAL,
 *       ENOENT, EFAULT, EOPNOTSUPP, ENOSYS, ...).
 * The order is stable within one boot; absent objects (no I/O context, no
 * SysV undo list, the mm of a zombie) compare equal. Answers about running
 * processes may be stale; see kcmp(2).
 */
int kcmp(pid_t pid1, pid_t pid2, int type, unsigned long idx1,
         unsigned long idx2);

/*
 * kcmp_same_file - do fd1 of pid1 and fd2 of pid2 refer to one open file
 * description (dup(), fork() and SCM_RIGHTS share one; two open()s of the
 * same file do not)?
 *
 * Returns 1 (same), 0 (different), or -1 with errno set: EINVAL (a pid <= 0),
 * EBADF (an fd < 0, as kcmp(2) says, or not open), ESRCH, EPERM, ... When kcmp(2) is unavailable
 * (ENOSYS, or EPERM even for the caller against itself: a seccomp filter or
 * sandbox) the library's fallbacks answer where they can: F_DUPFD_QUERY or
 * the epoll trick within the caller, pidfd_getfd(2) (ptrace attach rights)
 * for other processes. Whether kcmp(2) works is probed once per process.
 *
 * Ownership: none; nothing is allocated or kept.
 */
int kcmp_same_file(pid_t pid1, int fd1, pid_t pid2, int fd2);

/* One holder of an open file description. */
struct kcmp_holder {
    pid_t pid; /* the process */
    int fd;    /* the fd number in that process */
};

/*
 * kcmp_holders - every (pid, fd) on the host that refers to the same open
 * file description as fd of pid, sorted by pid then fd.
 *
 * On success returns the number of holders n and stores in *out an array of
 * n struct kcmp_holder (NULL when n is 0). On error returns -1, sets errno
 * (EINVAL: out is NULL, a pid <= 0, or a thread of the caller's process has
 * another fd table than the calling thread, from unshare(CLONE_FILES); EBADF:
 * an fd < 0 or not open; ESRCH; EPERM; ENOMEM; ...) and stores NULL in *out
 * when out is not NULL.
 * Processes the caller may not inspect, or that exit meanwhile, are skipped.
 * Without kcmp(2) it uses the same fallbacks as kcmp_same_file() (exact,
 * but slower: equality without order). It inspects processes with helper
 * threads (one per CPU), all joined before it returns.
 *
 * Ownership: the caller owns *out and must release it exactly once with
 * kcmp_holders_free().
 */
ssize_t kcmp_holders(pid_t pid, int fd, struct kcmp_holder **out);

/*
 * kcmp_holders_free - release an array stored by kcmp_holders().
 * NULL is accepted and ignored.
 */
void kcmp_holders_free(struct kcmp_holder *holders);

#ifdef __cplusplus
}
#endif

#endif /* KCMP_H */
