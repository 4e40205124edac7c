//! The `ticketgate` binary: parse the command line, set up logging, run.

use clap::Parser;

fn main() {
    let cli = ticketgate::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match ticketgate::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ticketgate: {e:#}");
            std::process::exit(1);
        }
    }
}
