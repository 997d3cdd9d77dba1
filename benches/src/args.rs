//! `--key value` / `--key=value` / `--flag` arguments, std only.

use std::collections::HashMap;
use std::str::FromStr;

/// Parsed arguments.
#[derive(Debug, Default)]
pub struct Args {
    values: HashMap<String, String>,
}

impl Args {
    /// Parses the process arguments. `keys` are the accepted option names
    /// (without `--`); `--help` prints `usage` and exits; an unknown option
    /// prints `usage` and exits with status 2.
    pub fn parse(usage: &str, keys: &[&str]) -> Args {
        Self::parse_from(std::env::args().skip(1), usage, keys)
    }

    /// Parses `args` (without the program name).
    pub fn parse_from(args: impl IntoIterator<Item = String>, usage: &str, keys: &[&str]) -> Args {
        let fail = |msg: &str| -> ! {
            eprintln!("{msg}\n\n{usage}");
            std::process::exit(2)
        };
        let mut values = HashMap::new();
        let mut args = args.into_iter().peekable();
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                println!("{usage}");
                std::process::exit(0);
            }
            let Some(name) = arg.strip_prefix("--") else { fail(&format!("unexpected argument {arg:?}")) };
            let (key, value) = match name.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => {
                    let value = match args.peek() {
                        Some(next) if !next.starts_with("--") => args.next().unwrap_or_default(),
                        _ => "true".to_owned(),
                    };
                    (name.to_owned(), value)
                }
            };
            if !keys.contains(&key.as_str()) {
                fail(&format!("unknown option --{key}"));
            }
            values.insert(key, value);
        }
        Args { values }
    }

    /// The value of `--key`, if given.
    pub fn opt<T: FromStr>(&self, key: &str) -> Option<T> {
        self.values.get(key).map(|v| {
            v.parse().unwrap_or_else(|_| {
                eprintln!("--{key}: cannot read {v:?}");
                std::process::exit(2)
            })
        })
    }

    /// The value of `--key`, or `default`.
    pub fn get<T: FromStr>(&self, key: &str, default: T) -> T {
        self.opt(key).unwrap_or(default)
    }

    /// Whether the flag `--key` was given (`--key false` turns it off).
    pub fn flag(&self, key: &str) -> bool {
        self.values.get(key).is_some_and(|v| v != "false" && v != "0")
    }

    /// A comma-separated list (`--key a,b,c`), or `default` (same syntax).
    pub fn list<T: FromStr>(&self, key: &str, default: &str) -> Vec<T> {
        let text = self.values.get(key).map_or(default, String::as_str);
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.replace('_', "").parse().unwrap_or_else(|_| {
                    eprintln!("--{key}: cannot read {s:?}");
                    std::process::exit(2)
                })
            })
            .collect()
    }
}
