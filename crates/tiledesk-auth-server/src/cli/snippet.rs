//! `tiledesk-auth snippet`: the one tag a site adds beside Tiledesk's own snippet, for the module this binary
//! carries, pinned by its Subresource Integrity hash.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use tiledesk_jwt::ProjectId;

use crate::module::{BrowserModule, ENTRY, NOT_BUILT};

/// `tiledesk-auth snippet`.
#[derive(Debug, Args)]
pub struct SnippetArgs {
    /// Where browsers reach this service, such as <https://auth.example.com> (a path is kept, for a service behind
    /// a reverse proxy under one: <https://www.example.com/chat-auth>).
    #[arg(long, env = "TILEDESK_AUTH_BASE_URL")]
    pub base_url: String,
    /// The Tiledesk project id (dashboard: Settings > Project).
    #[arg(long, env = "TILEDESK_PROJECT_ID")]
    pub project_id: ProjectId,
    /// Where the module asks for the visitor's token; by default `/auth` of --base-url.
    #[arg(long)]
    pub auth_url: Option<String>,
    /// What the widget does when the site says nobody is signed in, or the sign-in fails: stay hidden, or let the
    /// visitor chat anonymously.
    #[arg(long, value_enum, default_value_t = OnFailure::Hidden)]
    pub on_failure: OnFailure,
    /// When Tiledesk's loader boots: at once, or at the visitor's first interaction (Tiledesk's own default).
    #[arg(long, value_enum, default_value_t = Boot::Now)]
    pub boot: Boot,
    /// The Tiledesk loader, when the page has no Tiledesk snippet of its own (default: Tiledesk's).
    #[arg(long)]
    pub widget_url: Option<String>,
    /// The tag loads the module but signs nobody in: the page imports `TiledeskAuth` from the same URL itself.
    #[arg(long)]
    pub no_auto_start: bool,
}

/// `data-on-failure`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnFailure {
    /// Keep the widget hidden.
    Hidden,
    /// Sign the visitor in anonymously.
    Anonymous,
}

/// `data-boot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Boot {
    /// As soon as the page has loaded.
    Now,
    /// At the visitor's first scroll, click, touch or key, or after 5 seconds.
    Interaction,
}

/// The tag for `module`, or why there is none.
pub(super) fn tag(args: &SnippetArgs, module: &BrowserModule) -> anyhow::Result<String> {
    let base = base_url(&args.base_url)?;
    let entry = module
        .entry()
        .with_context(|| format!("the module this binary carries has no {ENTRY}"))?;
    let src = format!("{base}{}", module.path_of(ENTRY));
    let mut attributes = vec![
        ("type", "module".to_owned()),
        ("src", src),
        ("integrity", entry.integrity().to_owned()),
        ("crossorigin", "anonymous".to_owned()),
        ("data-project-id", args.project_id.as_str().to_owned()),
        (
            "data-auth-url",
            args.auth_url.clone().unwrap_or_else(|| format!("{base}/auth")),
        ),
    ];
    if args.on_failure == OnFailure::Anonymous {
        attributes.push(("data-on-failure", "anonymous".to_owned()));
    }
    if args.boot == Boot::Interaction {
        attributes.push(("data-boot", "interaction".to_owned()));
    }
    if let Some(url) = &args.widget_url {
        attributes.push(("data-widget-url", url.clone()));
    }
    if args.no_auto_start {
        attributes.push(("data-auto-start", "false".to_owned()));
    }
    let mut tag = String::from("<script");
    for (name, value) in attributes {
        tag.push(' ');
        tag.push_str(name);
        tag.push_str("=\"");
        tag.push_str(&escaped(&value));
        tag.push('"');
    }
    tag.push_str("></script>");
    Ok(tag)
}

/// `--base-url` without its trailing slash; only http and https, with a host and nothing after the path.
fn base_url(text: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(text).with_context(|| format!("--base-url {text:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("--base-url {text:?}: an http or https URL with a host, such as https://auth.example.com");
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        bail!("--base-url {text:?}: no query, fragment or user name");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// `value` as an HTML attribute value between double quotes.
fn escaped(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn snippet(args: &SnippetArgs) -> anyhow::Result<ExitCode> {
    let Some(module) = BrowserModule::embedded() else {
        bail!("{NOT_BUILT}");
    };
    println!("{}", tag(args, &module)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::module::ModuleFile;

    fn args(extra: &[&str]) -> SnippetArgs {
        let mut argv = vec![
            "tiledesk-auth",
            "snippet",
            "--project-id",
            "64f0c0ffee0123456789abcd",
        ];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Snippet(args) => args,
            other => panic!("{other:?}"),
        }
    }

    fn module() -> BrowserModule {
        BrowserModule::new([ModuleFile::new(
            ENTRY,
            "text/javascript",
            [Bytes::from_static(b"export {}"), Bytes::new(), Bytes::new()],
        )])
    }

    #[test]
    fn the_tag_pins_the_entry_and_carries_the_settings() {
        let module = module();
        let first = tag(&args(&["--base-url", "https://auth.example.com/"]), &module).unwrap();
        let integrity = module.entry().unwrap().integrity();
        assert_eq!(
            first,
            format!(
                "<script type=\"module\" src=\"https://auth.example.com/tiledesk-auth/{}/tiledesk-auth.js\" \
                 integrity=\"{integrity}\" crossorigin=\"anonymous\" data-project-id=\"64f0c0ffee0123456789abcd\" \
                 data-auth-url=\"https://auth.example.com/auth\"></script>",
                module.dir()
            )
        );
        let second = tag(
            &args(&[
                "--base-url",
                "https://www.example.com/chat-auth",
                "--on-failure",
                "anonymous",
                "--boot",
                "interaction",
                "--auth-url",
                "/chat-auth/auth?a=1&b=\"2\"",
                "--no-auto-start",
            ]),
            &module,
        )
        .unwrap();
        assert!(
            second.contains("src=\"https://www.example.com/chat-auth/tiledesk-auth/"),
            "{second}"
        );
        assert!(
            second.contains("data-auth-url=\"/chat-auth/auth?a=1&amp;b=&quot;2&quot;\""),
            "{second}"
        );
        assert!(
            second.contains(
                " data-on-failure=\"anonymous\" data-boot=\"interaction\" data-auto-start=\"false\">"
            ),
            "{second}"
        );
    }

    #[test]
    fn a_base_url_that_is_not_a_site_is_refused() {
        for bad in [
            "auth.example.com",
            "ftp://auth.example.com",
            "https://auth.example.com/?x=1",
            "https://user@auth.example.com",
        ] {
            assert!(tag(&args(&["--base-url", bad]), &module()).is_err(), "{bad}");
        }
    }
}
