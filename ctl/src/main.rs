//! `skiffctl`: the binary. Parses the command line, runs it on a single-threaded runtime, and
//! turns the outcome into one line on stderr and an exit status (see `skiffctl --help`).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use clap::error::ErrorKind;
use skiff_ctl::cli::{Cli, execute};
use skiff_ctl::{CtlError, EXIT_ERROR, EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE, Status};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match run(&cli) {
        Ok(Status::Ok) => ExitCode::from(EXIT_OK),
        Ok(Status::Unhealthy) => ExitCode::from(EXIT_UNHEALTHY),
        Err(e) => match e.downcast_ref::<CtlError>() {
            // `skiffctl consume … | head -1`: the reader left, which is not our failure.
            Some(ctl) if ctl.is_broken_pipe() => ExitCode::from(EXIT_OK),
            Some(ctl) if ctl.is_usage() => {
                eprintln!("skiffctl: {e:#}");
                ExitCode::from(EXIT_USAGE)
            }
            _ => {
                eprintln!("skiffctl: {e:#}");
                ExitCode::from(EXIT_ERROR)
            }
        },
    }
}

fn run(cli: &Cli) -> anyhow::Result<Status> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(execute(cli))?)
}

/// Help and version go to stdout as clap prints them; every other command-line error becomes one
/// line: clap's message, its tip if it has one, and where to find help.
fn usage_error(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return ExitCode::from(EXIT_OK);
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(EXIT_USAGE);
        }
        _ => {}
    }
    // clap renders paragraphs: the message (maybe continued on indented lines), a tip, the usage.
    let rendered = e.render().to_string();
    let mut message = String::new();
    let mut tip = None;
    let mut command = String::from("skiffctl");
    for (i, paragraph) in rendered.split("\n\n").enumerate() {
        let text = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        if i == 0 {
            message = text.trim_start_matches("error: ").to_string();
        } else if let Some(t) = text.strip_prefix("tip: ") {
            tip.get_or_insert_with(|| t.to_string());
        } else if let Some(usage) = text.strip_prefix("Usage: ") {
            command = usage
                .split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    let tip = tip.map(|t| format!("; {t}")).unwrap_or_default();
    eprintln!("skiffctl: {message}{tip} (see '{command} --help')");
    ExitCode::from(EXIT_USAGE)
}
