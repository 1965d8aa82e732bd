//! The engine's raw syscall layer: ptrace and waitid for freezing, fork
//! without exec and a few async-signal-safe calls for the freezer and the
//! sentinels, the keeper of copies left open, the outside closer, a pidfd's
//! parent; the only `unsafe` code of `kcmp-map`.

pub(crate) mod keeper;
pub(crate) mod outside;
pub(crate) mod pidfd;
pub(crate) mod process;
pub(crate) mod ptrace;
