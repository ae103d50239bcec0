//! The command line: `serve`, `invoke` and `token`.

use std::path::PathBuf;

use crate::functions::Function;

pub const USAGE: &str = "\
bcast-local: run bcast on your machine, without AWS.

USAGE:
    bcast-local serve  [--port 3000] [--host 127.0.0.1]
    bcast-local invoke <login|publish|fetch|heartbeat> --event <file>
                       [--client wp] [--account 123456] [--no-fill]
    bcast-local token  --client <client> --account <account_id> [--ttl <seconds>]

serve    One HTTP server for every route, running the four functions' own handlers,
         the demo page at /, and the JS client at /bcast.js. Uses REDIS_URL when set,
         otherwise starts a private redis-server (stopped on exit). Backend routes
         (publish, presence, sessions) answer loopback clients only. --port 0 picks a
         free port.
invoke   Runs one function on one Lambda event file (API Gateway v2/v1 or SQS) and
         prints the function's JSON response, like `sam local invoke -e`. The
         placeholders ${LOGIN_TOKEN} and ${CLIENT_KEY} are filled in (from the
         LOGIN_TOKEN and CLIENT_KEY environment variables when set, else with a fresh
         token and a fresh session for --client/--account) unless --no-fill is given.
token    Prints a login token signed with the local secret.

The functions' environment variables apply (BCAST_*, ROTATION*, HEARTBEAT_INTERVAL_SECS, ...).
Without LOGIN_TOKEN_SECRET a public development secret is used, and bcast-local says so.";

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve {
        host: String,
        port: u16,
    },
    Invoke {
        function: Function,
        event: PathBuf,
        client: String,
        account: String,
        fill: bool,
    },
    Token {
        client: String,
        account: String,
        ttl: Option<u64>,
    },
    Help,
}

/// Reads `--name value` and `--name=value` options; `flags` take no value.
struct Options {
    values: Vec<(String, String)>,
    flags: Vec<String>,
    positional: Vec<String>,
}

fn options(args: &[String], valued: &[&str], flags: &[&str]) -> Result<Options, String> {
    let mut out = Options {
        values: Vec::new(),
        flags: Vec::new(),
        positional: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if let Some(name) = arg.strip_prefix("--") {
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (name, None),
            };
            if flags.contains(&name) && inline.is_none() {
                out.flags.push(name.to_owned());
            } else if valued.contains(&name) {
                let value = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        args.get(i)
                            .cloned()
                            .ok_or_else(|| format!("--{name} needs a value"))?
                    }
                };
                if out.values.iter().any(|(n, _)| n == name) {
                    return Err(format!("--{name} given twice"));
                }
                out.values.push((name.to_owned(), value));
            } else {
                return Err(format!("unknown option --{name}"));
            }
        } else {
            out.positional.push(arg.clone());
        }
        i += 1;
    }
    Ok(out)
}

impl Options {
    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<String, String> {
        self.get(name)
            .map(str::to_owned)
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn no_positional(&self) -> Result<(), String> {
        match self.positional.first() {
            Some(extra) => Err(format!("unexpected argument {extra:?}")),
            None => Ok(()),
        }
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((command, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
    if rest.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(Command::Help);
    }
    match command.as_str() {
        "serve" => {
            let o = options(rest, &["port", "host"], &[])?;
            o.no_positional()?;
            let port = match o.get("port") {
                None => 3000,
                Some(p) => p
                    .parse()
                    .map_err(|_| format!("--port {p:?} is not a port number"))?,
            };
            Ok(Command::Serve {
                host: o.get("host").unwrap_or("127.0.0.1").to_owned(),
                port,
            })
        }
        "invoke" => {
            let o = options(rest, &["event", "client", "account"], &["no-fill"])?;
            let [function] = o.positional.as_slice() else {
                return Err("invoke takes one function: login, publish, fetch or heartbeat".into());
            };
            Ok(Command::Invoke {
                function: function.parse()?,
                event: PathBuf::from(o.required("event")?),
                client: o.get("client").unwrap_or("wp").to_owned(),
                account: o.get("account").unwrap_or("123456").to_owned(),
                fill: !o.flags.iter().any(|f| f == "no-fill"),
            })
        }
        "token" => {
            let o = options(rest, &["client", "account", "ttl"], &[])?;
            o.no_positional()?;
            let ttl =
                match o.get("ttl") {
                    None => None,
                    Some(t) => Some(t.parse::<u64>().ok().filter(|t| *t > 0).ok_or_else(|| {
                        format!("--ttl {t:?} is not a positive number of seconds")
                    })?),
                };
            Ok(Command::Token {
                client: o.required("client")?,
                account: o.required("account")?,
                ttl,
            })
        }
        "help" | "--help" | "-h" => Ok(Command::Help),
        other => Err(format!("unknown command {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn serve_has_defaults() {
        assert_eq!(
            parse(&args("serve")),
            Ok(Command::Serve {
                host: "127.0.0.1".into(),
                port: 3000
            })
        );
        assert_eq!(
            parse(&args("serve --port=0 --host 0.0.0.0")),
            Ok(Command::Serve {
                host: "0.0.0.0".into(),
                port: 0
            })
        );
        assert!(parse(&args("serve --port 70000")).is_err());
        assert!(parse(&args("serve --port")).is_err());
        assert!(parse(&args("serve --verbose")).is_err());
        assert!(parse(&args("serve extra")).is_err());
    }

    #[test]
    fn invoke_and_token_read_their_options() {
        assert_eq!(
            parse(&args(
                "invoke fetch --event events/fetch/broadcasts.v2.json"
            )),
            Ok(Command::Invoke {
                function: Function::Fetch,
                event: "events/fetch/broadcasts.v2.json".into(),
                client: "wp".into(),
                account: "123456".into(),
                fill: true,
            })
        );
        assert!(matches!(
            parse(&args("invoke login --no-fill --event e.json --account 9")),
            Ok(Command::Invoke { fill: false, ref account, .. }) if account == "9"
        ));
        assert!(parse(&args("invoke sqs --event e.json")).is_err());
        assert!(parse(&args("invoke fetch")).is_err());
        assert!(parse(&args("invoke --event e.json")).is_err());
        assert_eq!(
            parse(&args("token --client app --account 42 --ttl 60")),
            Ok(Command::Token {
                client: "app".into(),
                account: "42".into(),
                ttl: Some(60)
            })
        );
        assert!(parse(&args("token --client app")).is_err());
        assert!(parse(&args("token --client app --account 1 --ttl 0")).is_err());
        assert!(parse(&args("token --client a --client b --account 1")).is_err());
        assert_eq!(parse(&args("")), Ok(Command::Help));
        assert_eq!(parse(&args("serve --help")), Ok(Command::Help));
        assert!(parse(&args("deploy")).is_err());
    }
}
