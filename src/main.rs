//! The `mlops` binary: parse the arguments, run the command, print any error and exit
//! 0 (success), 1 (error) or 2 (`--detailed-exitcode` and changes present). A reader of stdout
//! that went away ends the output quietly (`mlops::ui::out`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = match mlops::cli::run() {
        Ok(code) => code,
        Err(err) => {
            mlops::err!("{}", err.report());
            err.exit_code()
        }
    };
    match mlops::ui::out::finish() {
        Some(reason) => {
            mlops::errln!("error: could not write the output to stdout: {reason}");
            ExitCode::from(1)
        }
        None => ExitCode::from(code),
    }
}
