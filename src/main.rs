//! The `mlops` binary: parse the arguments, run the command, print any error and exit
//! 0 (success), 1 (error) or 2 (`--detailed-exitcode` and changes present).

use std::process::ExitCode;

fn main() -> ExitCode {
    match mlops::cli::run() {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprint!("{}", err.report());
            ExitCode::from(err.exit_code())
        }
    }
}
