//! 0.1 code keeps compiling (with deprecation warnings) through the
//! deprecated aliases; docs/MIGRATION-0.2.md lists every move.
#![allow(deprecated)]

use kcmp::compare::{compare_files, Fd, Pid};
use kcmp::error::{errno_name, Error, Result};
use kcmp::kind::{KcmpType, ProcessResource};
use kcmp::ordering::KcmpOrdering;
use kcmp::process::ProcessHandle;

fn v01_style() -> Result<bool> {
    let me = Pid::this();
    let fd = Fd::new(0)?;
    let same: KcmpOrdering = compare_files(me, fd, me, fd)?;
    let h = ProcessHandle::open(me)?;
    assert!(h.compare_process(ProcessResource::Vm, &h)?.is_equal());
    assert_eq!(KcmpType::File.name(), "file");
    Ok(same.is_equal() && kcmp::compare::same_open_file(std::io::stdin(), std::io::stdin())?)
}

#[test]
fn code_written_for_0_1_still_compiles_and_runs() {
    assert!(v01_style().unwrap());
    let e: Error = kcmp::Fd::new(-1).unwrap_err();
    assert_eq!(errno_name(e.errno().unwrap()), "EBADF");
}
