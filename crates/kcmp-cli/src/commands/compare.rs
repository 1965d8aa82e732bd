//! `kcmp file|vm|files|fs|sighand|io|sysvsem|epoll-tfd`: one comparison,
//! answered `same` or `different`, exit status as cmp(1).

use crate::cli::{CompareOptions, ProcessPair};
use crate::{exit, report_error};
use kcmp::{EpollSlot, FdNum, KcmpOrdering, Pid, ProcessResource};
use serde_json::json;

/// What one comparison answered, for printing.
struct Answer {
    json: serde_json::Value,
    same: bool,
}

fn print(mut answer: Answer, options: &CompareOptions) -> i32 {
    if options.json {
        if options.freeze {
            answer.json["not_frozen"] =
                json!(crate::commands::freezing::last_not_frozen().unwrap_or_default());
        }
        crate::outln!("{}", answer.json);
    } else {
        crate::outln!("{}", if answer.same { "same" } else { "different" });
    }
    if answer.same {
        exit::SAME
    } else {
        exit::DIFFERENT
    }
}

fn pid(raw: i32) -> Result<Pid, kcmp::Error> {
    Pid::new(raw)
}

fn fd(raw: i32) -> Result<FdNum, kcmp::Error> {
    FdNum::new(raw)
}

fn base_json(
    ty: &str,
    pid1: i32,
    pid2: i32,
    idx1: i64,
    idx2: i64,
    result: KcmpOrdering,
) -> serde_json::Value {
    json!({
        "type": ty,
        "pid1": pid1,
        "pid2": pid2,
        "idx1": idx1,
        "idx2": idx2,
        "result": result.as_str(),
        "same": result.is_equal(),
    })
}

/// Runs `f` with `pids` frozen when `--freeze` was given.
fn with_freeze<T>(
    options: &CompareOptions,
    pids: &[Pid],
    f: impl FnOnce() -> Result<T, kcmp::Error>,
) -> Result<T, kcmp::Error> {
    crate::commands::freezing::run_frozen(options.freeze, pids, f)
}

/// `kcmp file PID1 FD1 PID2 FD2`.
pub fn file(pid1: i32, fd1: i32, pid2: i32, fd2: i32, options: &CompareOptions) -> i32 {
    let run = || -> Result<Answer, kcmp::Error> {
        let (p1, p2, f1, f2) = (pid(pid1)?, pid(pid2)?, fd(fd1)?, fd(fd2)?);
        // kcmp when it works (an ordering); otherwise the fallbacks, which
        // know equality only: "unordered" then means "not the same".
        let (result, method) = with_freeze(options, &[p1, p2], || {
            if kcmp::fallback::kcmp_available().is_available() {
                Ok((kcmp::compare_files(p1, f1, p2, f2)?, "kcmp"))
            } else {
                let answer = kcmp::fallback::same_description_without_kcmp(p1, f1, p2, f2)?;
                let result = if answer.same {
                    KcmpOrdering::Equal
                } else {
                    KcmpOrdering::Unordered(3)
                };
                Ok((result, answer.method.name()))
            }
        })?;
        let mut json = base_json("file", pid1, pid2, fd1 as i64, fd2 as i64, result);
        json["method"] = json!(method);
        Ok(Answer {
            same: result.is_equal(),
            json,
        })
    };
    match run() {
        Ok(a) => print(a, options),
        Err(e) => report_error(&explain(e, &[pid1, pid2])),
    }
}

/// The error, naming a missing pid or a zombie (see [`crate::commands::explain`]).
fn explain(e: kcmp::Error, pids: &[i32]) -> kcmp::Error {
    let pids: Vec<Pid> = pids.iter().filter_map(|&p| Pid::new(p).ok()).collect();
    crate::commands::explain::error(e, &pids)
}

/// `kcmp vm|files|fs|sighand|io|sysvsem PID1 PID2`.
///
/// Absence is decided exactly ([`kcmp_map::absent`]): when neither task has
/// such an object the answer is `different` (exit 1) with one stderr line
/// naming both, and JSON says `"result": "absent"`, `"absent": [pids]`;
/// when one has none, JSON lists it under `"absent"`.
pub fn process(resource: ProcessResource, pair: &ProcessPair) -> i32 {
    let run = || -> Result<(Answer, Option<String>), kcmp::Error> {
        let (p1, p2) = (pid(pair.pid1)?, pid(pair.pid2)?);
        let answer = with_freeze(&pair.options, &[p1, p2], || {
            kcmp_map::absent::compare_present(resource, p1, p2, None)
        })?;
        let mut json = base_json(resource.name(), pair.pid1, pair.pid2, 0, 0, answer.ordering);
        json["method"] = json!("kcmp");
        // Neither has one: "absent" (one without is a plain exact `different`).
        let neither = answer.absent.len() == 2;
        if !answer.absent.is_empty() {
            json["absent"] = json!(answer.absent);
            json["same"] = json!(false);
        }
        if neither {
            json["result"] = json!("absent");
        }
        let same = answer.is_same();
        let note = neither.then(|| absent_note(resource, &answer.absent));
        Ok((Answer { same, json }, note))
    };
    match run() {
        Ok((a, note)) => {
            if let Some(note) = note {
                eprintln!("kcmp: {note}");
            }
            print(a, &pair.options)
        }
        Err(e) => report_error(&explain(e, &[pair.pid1, pair.pid2])),
    }
}

/// The one stderr line naming the tasks that have no such object.
fn absent_note(resource: ProcessResource, absent: &[Pid]) -> String {
    let (article, what) = match resource {
        ProcessResource::Vm => ("an", "address space (a zombie or a kernel thread)"),
        ProcessResource::Files => ("an", "fd table (an exited task)"),
        ProcessResource::Fs => ("an", "fs struct (an exited task)"),
        ProcessResource::Io => ("an", "I/O context (allocated lazily, e.g. by ioprio_set)"),
        ProcessResource::Sysvsem => (
            "a",
            "SysV undo list (created by semop with SEM_UNDO or CLONE_SYSVSEM)",
        ),
        ProcessResource::Sighand => ("a", "signal-handler table"),
    };
    let pids: Vec<String> = absent.iter().map(|p| p.to_string()).collect();
    format!(
        "neither task ({}) has {article} {what}: nothing to share",
        pids.join(", ")
    )
}

/// `kcmp epoll-tfd PID1 FD1 PID2 EPFD TFD [--toff N]`.
pub fn epoll_tfd(
    pid1: i32,
    fd1: i32,
    pid2: i32,
    epfd: i32,
    tfd: i32,
    toff: u32,
    options: &CompareOptions,
) -> i32 {
    let run = || -> Result<Answer, kcmp::Error> {
        let (p1, p2, f1) = (pid(pid1)?, pid(pid2)?, fd(fd1)?);
        let slot = EpollSlot {
            epfd: fd(epfd)?,
            tfd: fd(tfd)?,
            toff,
        };
        let result = with_freeze(options, &[p1, p2], || {
            kcmp::compare_epoll_target(p1, f1, p2, slot)
        })?;
        let mut json = base_json("epoll-tfd", pid1, pid2, fd1 as i64, tfd as i64, result);
        json["efd"] = json!(epfd);
        json["epfd"] = json!(epfd);
        json["method"] = json!("kcmp");
        json["tfd"] = json!(tfd);
        json["toff"] = json!(toff);
        Ok(Answer {
            same: result.is_equal(),
            json,
        })
    };
    match run() {
        Ok(a) => print(a, options),
        Err(e) => report_error(&explain(e, &[pid1, pid2])),
    }
}
