//! One module per subcommand; each `run` returns the exit status.

pub mod audit;
pub mod compare;
pub mod demo;
pub mod doctor;
pub mod epoll;
pub mod explain;
pub mod freezing;
pub mod help;
pub mod holders;
pub mod scan;
