//! The `ticketgate` binary: parse the command line, set up logging, run.

use std::io::IsTerminal;

use clap::Parser;
use ticketgate::cli::{Cli, LogFormat};

fn main() {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colour only on a terminal: not in the journal or a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match ticketgate::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ticketgate: {e:#}");
            std::process::exit(1);
        }
    }
}
