//! The `tessera-admin` binary: parse the arguments, run the command on a
//! single-threaded runtime, and report a failure as one line on stderr.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use tessera_admin::cli::{self, Args, output};

fn main() -> ExitCode {
    // Usage errors, --help and --version end the process here (exit 2 or 0).
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Nothing sensible is left to do if stderr itself is gone.
            let _ = writeln!(io::stderr(), "tessera-admin: {}", output::one_line(&err.to_string()));
            ExitCode::from(err.exit_code())
        }
    }
}

fn run(args: Args) -> Result<(), cli::Error> {
    // One admin call at a time: a second thread would only cost start-up.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(cli::Error::Runtime)?;
    runtime.block_on(cli::run(args, &mut io::stdout()))
}
