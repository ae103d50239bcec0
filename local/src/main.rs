//! `bcast-local`: see the library's documentation and `bcast-local --help`.

use std::process::ExitCode;

use bcast_local::cli::{self, Command};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cli::parse(&args) {
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Serve { host, port }) => bcast_local::serve(&host, port),
        Ok(Command::Invoke {
            function,
            event,
            client,
            account,
            fill,
        }) => bcast_local::invoke(function, &event, &client, &account, fill),
        Ok(Command::Token {
            client,
            account,
            ttl,
        }) => bcast_local::token(&client, &account, ttl),
        Err(e) => {
            eprintln!("bcast-local: {e}\n\n{}", cli::USAGE);
            ExitCode::from(2)
        }
    }
}
