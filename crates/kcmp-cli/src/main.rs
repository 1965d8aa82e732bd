use clap::Parser;
fn main() {
    let cli = kcmp_cli::Cli::parse();
    eprintln!("{cli:?}");
}
