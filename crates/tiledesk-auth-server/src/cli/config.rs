//! `serve --config tiledesk-auth.toml`: every `serve` setting in one file (`docs/tiledesk-auth.toml` is an annotated
//! example). A key is a flag's name (`read_timeout` or `read-timeout`) or its field's (`allowed_origins`), with the
//! flag's value: a string, a number, `true`, or an array for a flag given several times.
//!
//! Precedence, highest first: the command line, then the environment, then the file, then the defaults. The file is
//! read before the command line is parsed: each setting neither given as a flag nor set in the environment becomes a
//! flag, so the file is checked exactly as the flags are (and `serve --check` checks it). An unknown key is refused
//! with its name; so is a secret written into the file: secrets come from files (`secret_file`, `api_key_file`) or
//! the environment, never from a configuration file that is copied, committed and shared.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The environment variable that names the file when `--config` is not given.
pub const CONFIG_VAR: &str = "TILEDESK_AUTH_CONFIG";

/// Why the configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It cannot be read.
    #[error("cannot read the configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not TOML.
    #[error("the configuration file {} is not TOML: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A key names no `serve` setting.
    #[error("the configuration file {} has an unknown key `{key}` (keys are serve's flags: listen, database, read_timeout...)", path.display())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A secret written into the file.
    #[error("the configuration file {} holds `{key}`: {hint}", path.display())]
    Secret {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Where the secret goes instead.
        hint: &'static str,
    },
    /// A value of a kind the flag cannot take (a table, or an array for a flag given once).
    #[error("the configuration file {} gives `{key}` a value of the wrong kind: {expected}", path.display())]
    Kind {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What it takes.
        expected: &'static str,
    },
}

/// `args` (the whole command line, program name first) with the settings of the configuration file added as flags,
/// for `serve` given `--config FILE` (or `TILEDESK_AUTH_CONFIG`); anything else as it is.
pub fn with_config_file(args: Vec<OsString>, command: &clap::Command) -> Result<Vec<OsString>, ConfigError> {
    if args.get(1).and_then(|arg| arg.to_str()) != Some("serve") {
        return Ok(args);
    }
    let Some(serve) = command.find_subcommand("serve") else {
        return Ok(args);
    };
    let Some(path) = config_path(&args[2..]) else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let added = flags_from(&text, &path, serve, &args[2..], |var| {
        std::env::var_os(var).is_some()
    })?;
    let mut all = args;
    all.extend(added);
    Ok(all)
}

/// `--config FILE`, `--config=FILE`, or the environment's.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os(CONFIG_VAR).map(PathBuf::from)
}

/// Keys whose values are secrets, and where they go instead.
const SECRETS: [(&str, &str); 2] = [
    (
        "secret",
        "write the secret to a file and give `secret_file`, or set TILEDESK_SECRET",
    ),
    (
        "api_key",
        "write the key to a file and give `api_key_file`, or set TILEDESK_API_KEY",
    ),
];

/// Keys whose values are URLs that may hold a password.
const URLS: [(&str, &str); 2] = [
    (
        "database",
        "set TILEDESK_AUTH_DATABASE in the environment for a URL with a password",
    ),
    (
        "throttle",
        "set TILEDESK_AUTH_THROTTLE in the environment for a URL with a password",
    ),
];

/// The flags the file's settings become, leaving out those given on the command line (`given`) or in the
/// environment (`in_env` says whether a variable is set).
fn flags_from(
    text: &str,
    path: &Path,
    serve: &clap::Command,
    given: &[OsString],
    in_env: impl Fn(&str) -> bool,
) -> Result<Vec<OsString>, ConfigError> {
    let table: toml::Table = text.parse().map_err(|err: toml::de::Error| ConfigError::Syntax {
        path: path.to_owned(),
        message: err.message().to_owned(),
    })?;
    let mut flags = Vec::new();
    for (key, value) in &table {
        let normal = key.replace('-', "_");
        let Some(arg) = serve.get_arguments().find(|arg| {
            arg.get_id().as_str() == normal
                || arg
                    .get_long()
                    .is_some_and(|long| long.replace('-', "_") == normal)
        }) else {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key: key.clone(),
            });
        };
        let Some(long) = arg.get_long() else {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key: key.clone(),
            });
        };
        if long == "config" || long == "check" {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key: key.clone(),
            });
        }
        if let Some((_, hint)) = SECRETS.iter().find(|(name, _)| *name == long.replace('-', "_")) {
            return Err(ConfigError::Secret {
                path: path.to_owned(),
                key: key.clone(),
                hint,
            });
        }
        if let (Some((_, hint)), Some(url)) = (URLS.iter().find(|(name, _)| *name == long), value.as_str())
            && url::Url::parse(url).is_ok_and(|url| {
                url.password().is_some() || url.query_pairs().any(|(name, _)| name.contains("password"))
            })
        {
            return Err(ConfigError::Secret {
                path: path.to_owned(),
                key: key.clone(),
                hint,
            });
        }
        let on_command_line = given.iter().any(|arg| {
            let arg = arg.to_string_lossy();
            arg == format!("--{long}") || arg.starts_with(&format!("--{long}="))
        });
        let in_environment = arg.get_env().and_then(|var| var.to_str()).is_some_and(&in_env);
        if on_command_line || in_environment {
            continue;
        }
        let takes_value = arg.get_action().takes_values();
        let kind = |expected| ConfigError::Kind {
            path: path.to_owned(),
            key: key.clone(),
            expected,
        };
        match value {
            toml::Value::Boolean(set) if !takes_value => {
                if *set {
                    flags.push(OsString::from(format!("--{long}")));
                }
            }
            _ if !takes_value => return Err(kind("true or false")),
            toml::Value::Array(items) => {
                if !matches!(arg.get_action(), clap::ArgAction::Append) {
                    return Err(kind("one value, not a list"));
                }
                for item in items {
                    flags.push(OsString::from(format!(
                        "--{long}={}",
                        scalar(item).ok_or_else(|| kind("a list of strings or numbers"))?
                    )));
                }
            }
            other => {
                let value = scalar(other).ok_or_else(|| kind("a string, a number or true/false"))?;
                flags.push(OsString::from(format!("--{long}={value}")));
            }
        }
    }
    Ok(flags)
}

/// A string, number or boolean as the flag's text.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Float(number) => Some(number.to_string()),
        toml::Value::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn flags(text: &str, given: &[&str], env: &[&str]) -> Result<Vec<String>, ConfigError> {
        let command = super::super::Cli::command();
        let serve = command.find_subcommand("serve").unwrap().clone();
        let given: Vec<OsString> = given.iter().map(OsString::from).collect();
        flags_from(text, Path::new("t.toml"), &serve, &given, |var| {
            env.contains(&var)
        })
        .map(|flags| {
            flags
                .into_iter()
                .map(|flag| flag.into_string().unwrap())
                .collect()
        })
    }

    #[test]
    fn settings_become_flags_unless_the_command_line_or_the_environment_has_them() {
        let text = r#"
            listen = "0.0.0.0:3000"
            read-timeout = "20s"
            token_ttl = "2h"
            allowed_origins = ["https://www.example.com", "https://shop.example.com"]
            session_forward_authorization = true
            max_connections = 2048
        "#;
        let mut all = flags(text, &[], &[]).unwrap();
        all.sort();
        assert_eq!(
            all,
            [
                "--allowed-origin=https://shop.example.com",
                "--allowed-origin=https://www.example.com",
                "--listen=0.0.0.0:3000",
                "--max-connections=2048",
                "--read-timeout=20s",
                "--session-forward-authorization",
                "--token-ttl=2h",
            ]
        );
        let some = flags(
            text,
            &["--listen", "127.0.0.1:1", "--token-ttl=5m"],
            &["TILEDESK_AUTH_READ_TIMEOUT"],
        )
        .unwrap();
        assert!(
            !some.iter().any(|f| f.starts_with("--listen")
                || f.starts_with("--token-ttl")
                || f.starts_with("--read-timeout")),
            "{some:?}"
        );
        assert!(some.contains(&"--max-connections=2048".to_owned()));
    }

    #[test]
    fn unknown_keys_secrets_and_wrong_kinds_are_refused_by_name() {
        let err = |text: &str| flags(text, &[], &[]).unwrap_err().to_string();
        assert!(err("lisen = \"0.0.0.0:1\"").contains("unknown key `lisen`"));
        assert!(err("check = true").contains("unknown key `check`"));
        assert!(err("secret = \"0123456789abcdef0123456789abcdef\"").contains("secret_file"));
        assert!(err("api_key = \"0123456789abcdef\"").contains("api_key_file"));
        assert!(err("database = \"postgres://app:s3cret@db/users\"").contains("TILEDESK_AUTH_DATABASE"));
        assert!(!err("database = \"postgres://app:s3cret@db/users\"").contains("s3cret"));
        assert!(err("throttle = \"redis://:pw@10.0.0.20:6379\"").contains("TILEDESK_AUTH_THROTTLE"));
        assert!(err("listen = [\"a\", \"b\"]").contains("one value"));
        assert!(err("check_me = 1").contains("unknown key"));
        assert!(err("session_forward_authorization = \"yes\"").contains("true or false"));
        assert!(err("not toml =").contains("not TOML"));
        // A database URL without a password is fine.
        assert_eq!(
            flags("database = \"postgres://app@db/users\"", &[], &[]).unwrap(),
            ["--database=postgres://app@db/users"]
        );
    }

    #[test]
    fn the_annotated_example_names_only_known_settings() {
        let example = include_str!("../../../../docs/tiledesk-auth.toml");
        let set = flags(example, &[], &[]).unwrap();
        assert!(set.len() >= 10, "{set:?}");
    }
}
