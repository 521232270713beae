//! The `tessera-admin` binary: parse the arguments, then either open the
//! console (no subcommand) or run the command on a single-threaded runtime,
//! and report a failure as one line on stderr.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use tessera_admin::cli::{self, Args, output};
use tessera_admin::client::AdminClient;
use tessera_admin::console;

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
    if args.command.is_none() {
        // Scripts get an error, not a full-screen UI they cannot drive.
        if !(io::stdin().is_terminal() && io::stdout().is_terminal()) {
            return Err(cli::Error::NoCommand);
        }
        let client = AdminClient::new(args.global.socket_path()).with_timeout(console::CALL_TIMEOUT);
        return console::run(client).map_err(cli::Error::Console);
    }
    // One admin call at a time: a second thread would only cost start-up.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(cli::Error::Runtime)?;
    runtime.block_on(cli::run(args, &mut io::stdout()))
}
