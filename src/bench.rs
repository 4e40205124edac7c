//! `ticketgate bench`.

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Messages in the generated corpus.
    #[arg(long, default_value_t = 5000)]
    pub messages: usize,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let _ = args;
    Ok(())
}
