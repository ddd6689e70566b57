//! The `sesame` command: a thin shell over the library.

mod cli;

/// jemalloc in place of the system allocator. Under client_credentials load, glibc's malloc and
/// free took about 16% of the server's CPU samples (`perf record`, ES256, 32 connections), and
/// jemalloc used about 8% less CPU per token. An application that embeds the library chooses
/// its own allocator.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::ExitCode;

use clap::Parser as _;

/// Task polls a runtime worker makes between two checks for ready sockets while it still has
/// tasks queued (tokio's default is 61). An RS256 token request keeps its worker busy for a
/// whole signature, about 0.27 ms. At 61 polls, requests that had arrived waited in the kernel
/// while the other worker ran out of work and slept. Under the bench's RS256
/// client_credentials load, the two cores sat 2.5-2.8% idle at 61 and 0.7-1.0% idle at 21,
/// and at 21 the server issued 0.6-5.5% more tokens per second over five paired runs. ES256
/// tokens and bearer-guarded requests kept their rates within the runs' noise.
const EVENT_INTERVAL: u32 = 21;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(EVENT_INTERVAL)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", cli::one_line(&error));
            if error.is::<cli::UsageError>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
