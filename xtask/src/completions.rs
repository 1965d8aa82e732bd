//! Shell completions (bash, zsh, fish) generated from the CLI definition.

use crate::{write_file, Layout};
use std::io;
use std::path::PathBuf;

/// The shells [`install_completions`] writes for, with their install
/// directory and file name.
pub fn completion_files(layout: &Layout) -> Vec<(clap_complete::Shell, PathBuf)> {
    use clap_complete::Shell;
    vec![
        (Shell::Bash, layout.bash_completion_dir().join("kcmp")),
        (Shell::Zsh, layout.zsh_completion_dir().join("_kcmp")),
        (Shell::Fish, layout.fish_completion_dir().join("kcmp.fish")),
    ]
}

/// Installs bash, zsh and fish completions generated from the CLI
/// definition.
pub fn install_completions(layout: &Layout) -> io::Result<Vec<PathBuf>> {
    let mut installed = Vec::new();
    for (shell, path) in completion_files(layout) {
        let mut cmd = kcmp_cli::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "kcmp", &mut buf);
        write_file(&path, &buf, 0o644)?;
        installed.push(path);
    }
    Ok(installed)
}
