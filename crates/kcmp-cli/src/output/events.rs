//! epoll event masks as flag names (`EPOLLIN|EPOLLET`).

const FLAGS: &[(u32, &str)] = &[
    (0x001, "EPOLLIN"),
    (0x002, "EPOLLPRI"),
    (0x004, "EPOLLOUT"),
    (0x008, "EPOLLERR"),
    (0x010, "EPOLLHUP"),
    (0x020, "EPOLLNVAL"),
    (0x040, "EPOLLRDNORM"),
    (0x080, "EPOLLRDBAND"),
    (0x100, "EPOLLWRNORM"),
    (0x200, "EPOLLWRBAND"),
    (0x400, "EPOLLMSG"),
    (0x2000, "EPOLLRDHUP"),
    (1 << 27, "EPOLL_URING_WAKE"),
    (1 << 28, "EPOLLEXCLUSIVE"),
    (1 << 29, "EPOLLWAKEUP"),
    (1 << 30, "EPOLLONESHOT"),
    (1 << 31, "EPOLLET"),
];

/// The names of the bits set in `events`, in bit order; bits without a
/// name as one `0x…` entry at the end.
///
/// ```
/// use kcmp_cli::output::events::names;
/// assert_eq!(names(0x8000_0019), ["EPOLLIN", "EPOLLERR", "EPOLLHUP", "EPOLLET"]);
/// assert_eq!(names(0x1 | 0x800), ["EPOLLIN", "0x800"]);
/// assert!(names(0).is_empty());
/// ```
pub fn names(events: u32) -> Vec<String> {
    let mut out: Vec<String> = FLAGS
        .iter()
        .filter(|(bit, _)| events & bit != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let known = FLAGS.iter().fold(0u32, |a, (b, _)| a | b);
    if events & !known != 0 {
        out.push(format!("{:#x}", events & !known));
    }
    out
}

/// `EPOLLIN|EPOLLET`, or `0` for an empty mask.
///
/// ```
/// assert_eq!(kcmp_cli::output::events::text(0x8000_0001), "EPOLLIN|EPOLLET");
/// assert_eq!(kcmp_cli::output::events::text(0), "0");
/// ```
pub fn text(events: u32) -> String {
    let n = names(events);
    if n.is_empty() {
        "0".into()
    } else {
        n.join("|")
    }
}
