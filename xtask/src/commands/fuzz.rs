//! `cargo xtask fuzz [CASES]`: the property tests with many more cases than `test` runs.

use crate::process::*;
use anyhow::Context;

/// The property tests (claims, minting, the checker, the request bodies) with `cases` cases each instead of the
/// 256 `cargo xtask test` runs.
pub(crate) fn fuzz(args: &[String]) -> anyhow::Result<()> {
    let cases = args.first().map_or("20000", String::as_str);
    let cases: u32 = cases.parse().context("usage: cargo xtask fuzz [CASES]")?;
    for (package, what) in [
        ("tiledesk-jwt", "claims builder, minting and the token checker"),
        (
            "tiledesk-auth-server",
            "POST /auth and POST /tokens bodies through the router",
        ),
    ] {
        step(&format!("{cases} cases per property: {what}"));
        let started = std::time::Instant::now();
        run(cargo()
            .args(["test", "--package", package, "--test", "properties"])
            .env("PROPTEST_CASES", cases.to_string()))?;
        println!(
            "  {package}: {cases} cases per property passed in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
