//! `cargo xtask`: project tasks (see the library docs).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Project tasks for the kcmp workspace.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build (dist profile) and install the kcmp binary, libkcmp, kcmp.h, kcmp.pc,
    /// man pages and shell completions under PREFIX.
    Install {
        /// The install prefix, e.g. /usr/local.
        #[arg(long)]
        prefix: PathBuf,
        /// Stage the install under this directory (packagers' DESTDIR);
        /// kcmp.pc still names PREFIX.
        #[arg(long)]
        destdir: Option<PathBuf>,
        /// The cargo profile to build (`dist`: no debug info, stripped,
        /// LTO; the README's `cargo run --profile dist` shares its build).
        #[arg(long, default_value = xtask::DIST_PROFILE)]
        profile: String,
        /// Build in this cargo target directory instead of the workspace's.
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
    /// Build (dist profile) the release artifacts into dist/: the tarball
    /// kcmp-VERSION-x86_64-linux-gnu.tar.gz and the Debian packages kcmp,
    /// libkcmp0 and libkcmp-dev (dpkg-deb), with SHA256SUMS.
    Dist {
        /// The output directory.
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// Build in this cargo target directory instead of the workspace's.
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
    /// Benchmark libkcmp's kcmp() against a raw syscall(SYS_kcmp, ...) loop
    /// (crates/kcmp-ffi/benches/kcmp_vs_syscall.c, built against a staged
    /// release install).
    BenchC {
        /// Calls per timed loop.
        #[arg(long, default_value_t = 1_000_000)]
        calls: u64,
        /// Timed loops per variant (alternating).
        #[arg(long, default_value_t = 7)]
        rounds: u32,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.task {
        Task::Install {
            prefix,
            destdir,
            profile,
            target_dir,
        } => {
            let prefix = if prefix.is_absolute() {
                prefix
            } else {
                match std::env::current_dir() {
                    Ok(cwd) => cwd.join(prefix),
                    Err(e) => {
                        eprintln!("xtask: current directory: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            };
            let mut layout = xtask::Layout::new(&prefix);
            if let Some(d) = destdir {
                layout = layout.with_destdir(&d);
            }
            let opts = xtask::InstallOptions {
                profile,
                target_dir,
            };
            xtask::install(&layout, &opts).map(|files| {
                for f in files {
                    println!("installed {}", f.display());
                }
            })
        }
        Task::Dist {
            out_dir,
            target_dir,
        } => {
            let mut opts = xtask::dist::DistOptions {
                target_dir,
                ..Default::default()
            };
            if let Some(d) = out_dir {
                opts.out_dir = d;
            }
            xtask::dist::dist(&opts).map(|files| {
                for f in files {
                    println!("wrote {}", f.display());
                }
            })
        }
        Task::BenchC { calls, rounds } => xtask::bench_c(calls, rounds).map(|report| {
            print!("{report}");
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
