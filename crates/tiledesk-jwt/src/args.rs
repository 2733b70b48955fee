//! The project and its secret on a command line (feature `clap`): one definition for every binary that signs or
//! checks tokens, with the secret kept out of clap's error messages.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::{Error, ProjectId, ProjectSecret};

/// `--project-id`, `--secret` and `--secret-file`, with their environment variables; flatten it into a command's
/// arguments (`#[command(flatten)]`) and call [`ProjectArgs::resolve`].
#[derive(Debug, clap::Args)]
pub struct ProjectArgs {
    /// The Tiledesk project id (dashboard: Settings > Project).
    #[arg(long, env = "TILEDESK_PROJECT_ID")]
    pub project_id: Option<ProjectId>,
    /// The project's shared secret. Prefer --secret-file: a flag is visible to other local users.
    #[arg(
        long,
        env = "TILEDESK_SECRET",
        hide_env_values = true,
        conflicts_with = "secret_file"
    )]
    pub secret: Option<SecretArg>,
    /// A file holding the project's shared secret (a trailing newline is ignored).
    #[arg(long, env = "TILEDESK_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
}

impl ProjectArgs {
    /// The project id and secret, or an error saying which is missing or why the secret was refused.
    pub fn resolve(&self) -> Result<(ProjectId, ProjectSecret), Error> {
        let project = self.project_id.clone().ok_or(Error::NotConfigured {
            what: "Tiledesk project id",
            how: "set TILEDESK_PROJECT_ID or pass --project-id",
        })?;
        let secret = match (&self.secret, &self.secret_file) {
            (Some(SecretArg(secret)), _) => ProjectSecret::new(secret)?,
            (None, Some(path)) => ProjectSecret::from_file(path)?,
            (None, None) => {
                return Err(Error::NotConfigured {
                    what: "Tiledesk project secret",
                    how: "set TILEDESK_SECRET_FILE (or TILEDESK_SECRET), or pass --secret-file",
                });
            }
        };
        Ok((project, secret))
    }

    /// The file the secret was read from, when it came from one: what a reload reads again.
    pub fn secret_file(&self) -> Option<&Path> {
        self.secret
            .is_none()
            .then_some(self.secret_file.as_deref())
            .flatten()
    }
}

/// The secret as given on the command line or in `TILEDESK_SECRET`, checked by [`ProjectArgs::resolve`]: were clap
/// to check it, its error would quote the refused value, the secret itself, on stderr.
#[derive(Clone)]
pub struct SecretArg(Zeroizing<String>);

impl FromStr for SecretArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(Zeroizing::new(s.to_owned())))
    }
}

impl fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::ProjectArgs;
    use crate::Error;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        project: ProjectArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
    }

    const SECRET: &str = "3f1c9a52-5d2e-4f7b-9c1a-2b8e6d4f0a17";

    #[test]
    fn resolves_a_secret_given_inline_or_in_a_file() {
        let cli = parse(&["--project-id", "p1", "--secret", SECRET]).unwrap();
        let (project, _) = cli.project.resolve().unwrap();
        assert_eq!(project.as_str(), "p1");
        assert_eq!(
            cli.project.secret_file(),
            None,
            "an inline secret has no file to reload"
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, format!("{SECRET}\n")).unwrap();
        let cli = parse(&["--project-id", "p1", "--secret-file", file.to_str().unwrap()]).unwrap();
        cli.project.resolve().unwrap();
        assert_eq!(cli.project.secret_file(), Some(file.as_path()));
    }

    #[test]
    fn says_what_is_missing() {
        let missing = |args: &[&str]| match parse(args).unwrap().project.resolve() {
            Err(Error::NotConfigured { what, .. }) => what,
            other => panic!("{other:?}"),
        };
        assert_eq!(missing(&["--secret", SECRET]), "Tiledesk project id");
        assert_eq!(missing(&["--project-id", "p1"]), "Tiledesk project secret");
    }

    #[test]
    fn a_refused_secret_is_never_quoted() {
        let short = "s3cr3t-but-far-too-short";
        let err = parse(&["--project-id", "p1", "--secret", short])
            .unwrap()
            .project
            .resolve()
            .unwrap_err();
        assert!(matches!(err, Error::ShortSecret { len: 24 }), "{err:?}");
        assert!(!err.to_string().contains(short), "{err}");
        let cli = parse(&["--project-id", "p1", "--secret", short]).unwrap();
        assert!(!format!("{cli:?}").contains(short));
        let both = parse(&["--secret", short, "--secret-file", "/x"])
            .unwrap_err()
            .to_string();
        assert!(!both.contains(short), "{both}");
    }
}
