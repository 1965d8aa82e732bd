//! The engine's raw syscall layer: ptrace and waitid for freezing, the only
//! `unsafe` code of `kcmp-map`.

pub(crate) mod ptrace;
