//! The command line: the scenario, `--procs`, `--fds`, `--seed` and the
//! `shape` scenario's own options.

use crate::{shape, R};

/// The parsed command line.
pub struct Args {
    pub scenario: String,
    pub procs: usize,
    pub fds: usize,
    pub seed: u64,
    /// The `shape` scenario's own parameters.
    pub shape: ShapeOpts,
}

/// `--inherit`, `--reuse`, `--opens`, `--depth`, `--paths` (shape only).
#[derive(Default)]
pub struct ShapeOpts {
    pub inherit: Option<usize>,
    pub reuse: Option<usize>,
    pub opens: Option<usize>,
    pub depth: Option<usize>,
    pub paths: Option<usize>,
}

pub const SCENARIOS: &str = "general, bench, basic, clone, epoll, prefork, shape";

pub fn parse_args() -> R<Args> {
    let mut it = std::env::args().skip(1);
    let mut scenario = None;
    let (mut procs, mut fds, mut seed) = (None, None, 1u64);
    let mut shape = ShapeOpts::default();
    while let Some(a) = it.next() {
        let mut num = |what: &str| -> R<u64> {
            let v = it.next().ok_or_else(|| format!("{what} needs a value"))?;
            v.parse()
                .map_err(|_| format!("{what}: {v:?} is not a number"))
        };
        match a.as_str() {
            "--procs" => procs = Some(num("--procs")? as usize),
            "--fds" => fds = Some(num("--fds")? as usize),
            "--seed" => seed = num("--seed")?,
            "--inherit" => shape.inherit = Some(num("--inherit")? as usize),
            "--reuse" => shape.reuse = Some(num("--reuse")? as usize),
            "--opens" => shape.opens = Some(num("--opens")? as usize),
            "--depth" => shape.depth = Some(num("--depth")? as usize),
            "--paths" => shape.paths = Some(num("--paths")? as usize),
            "-h" | "--help" => {
                println!(
                    "usage: kcmp-topology <scenario> [--procs N] [--fds M] [--seed S]\n\
                     \x20      kcmp-topology shape [--procs N] [--fds M] [--inherit PCT] [--reuse PCT]\n\
                     \x20                          [--opens K] [--depth D] [--paths N] [--seed S]\n\
                     scenarios: {SCENARIOS}\n\
                     Prints one line of JSON (the truth) when ready, then waits for EOF on stdin."
                );
                std::process::exit(0);
            }
            s if !s.starts_with('-') && scenario.is_none() => scenario = Some(s.to_string()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let scenario = scenario.unwrap_or_else(|| "general".into());
    let given = [
        shape.inherit,
        shape.reuse,
        shape.opens,
        shape.depth,
        shape.paths,
    ];
    if scenario != "shape" && given.iter().any(Option::is_some) {
        return Err(
            "--inherit, --reuse, --opens, --depth and --paths apply to the shape scenario only"
                .into(),
        );
    }
    let (dp, df) = match scenario.as_str() {
        "bench" => (500, 100),
        "shape" => (100, 100),
        _ => (12, 10),
    };
    Ok(Args {
        scenario,
        procs: procs.unwrap_or(dp),
        fds: fds.unwrap_or(df),
        seed,
        shape,
    })
}

/// The `shape` scenario's parameters, defaults filled in.
pub fn shape_of(a: &Args) -> shape::Shape {
    let o = &a.shape;
    shape::Shape {
        procs: a.procs,
        fds: a.fds,
        inherit: o.inherit.unwrap_or(50),
        reuse: o.reuse.unwrap_or(0),
        opens: o.opens.unwrap_or(a.fds / 10),
        depth: o.depth.unwrap_or(1),
        paths: o.paths.unwrap_or(8),
        seed: a.seed,
    }
}
