//! The browser module against hand-written JavaScript, and Tiledesk's real widget: the e2e crate's benches.

use super::*;

/// 5. The browser module against hand-written sequential JavaScript, and the module's own costs.
pub(super) fn browser(plan: &Plan, package: &Path, report: &mut Report) -> anyhow::Result<()> {
    step("the browser module against hand-written JavaScript (headless Chromium)");
    crate::commands::setup_browser()?;
    let rounds = if plan.quick { 3 } else { 7 };
    let token_delay = 50;
    let env = [
        ("BENCH_ROUNDS", rounds.to_string()),
        ("BENCH_TOKEN_DELAY", token_delay.to_string()),
        ("BENCH_DELAYS", "0,200,1000".to_owned()),
    ];
    // BENCH browser page=module delay=0 token_delay=50 round=0 ms=123.45 init_ms=12.3
    let mut times: BTreeMap<(u64, String), Vec<f64>> = BTreeMap::new();
    let mut inits = Vec::new();
    for fields in e2e_bench("browser", &env)? {
        let (Some(page), Some(delay), Some(ms)) = (fields.get("page"), fields.get("delay"), fields.get("ms"))
        else {
            bail!("unreadable line from the browser benchmark: {fields:?}");
        };
        times
            .entry((delay.parse()?, page.clone()))
            .or_default()
            .push(ms.parse()?);
        if let Some(init) = fields.get("init_ms") {
            inits.push(init.parse::<f64>()?);
        }
    }
    if times.is_empty() {
        bail!("the browser benchmark printed no figures");
    }
    let mut table = String::from(
        "| loader delay | module: signIn() to widget shown | hand-written JS | module faster by |\n|---|---|---|---|\n",
    );
    for delay in [0u64, 200, 1000] {
        let module = median(
            times
                .get(&(delay, "module".to_owned()))
                .cloned()
                .unwrap_or_default(),
        );
        let js = median(
            times
                .get(&(delay, "sequential".to_owned()))
                .cloned()
                .unwrap_or_default(),
        );
        writeln!(
            table,
            "| {delay} ms | {module:.0} ms | {js:.0} ms | {:.0} ms ({:.2}x) |",
            js - module,
            js / module
        )?;
        report.line(format!(
            "browser, loader delay {delay} ms: module {module:.0} ms vs hand-written sequential JS {js:.0} ms to the widget shown ({:.2}x; token endpoint {token_delay} ms)",
            js / module
        ));
    }
    let init = median(inits);
    let size = crate::commands::wasm_size_of(package)?;
    report.line(format!(
        "browser module: wasm fetch + instantiation {init:.1} ms (from the HTTP cache), {:.1} KiB gzipped",
        size as f64 / 1024.0
    ));
    report.commands.push(format!(
        "BENCH_ROUNDS={rounds} BENCH_TOKEN_DELAY={token_delay} BENCH_DELAYS=0,200,1000 cargo bench -p tiledesk-e2e --bench browser"
    ));
    report.sections.push(format!(
        "## The browser module against hand-written JavaScript\n\n\
         Headless Chromium, the stand-in loader and the mock Tiledesk API (`tests/e2e/benches/browser.rs`, pages in \
         `bench/browser/`). Both pages start after the window's load event with no stored session, and stop when \
         the widget is visible and signed in (a `MutationObserver`). The hand-written page follows the tutorial's \
         order: fetch the token, then insert the loader, then sign in (queued) and show on `online`. The module \
         fetches the token while the loader loads. The token endpoint answers after {token_delay} ms; the loader \
         after the delay shown; the stand-in boots at once (the real widget waits for an interaction or 5 s, which \
         would add the same to both). Median of {rounds} rounds per cell, pages alternating.\n\n{table}\n\
         The module itself: fetch (from the HTTP cache) + compile + instantiate, median {init:.1} ms; \
         {size} bytes ({:.1} KiB) gzipped, module and JS glue.\n",
        size as f64 / 1024.0
    ));
    Ok(())
}

/// Runs the `tiledesk-e2e` bench binary `bench` with `env`, and returns the `key=value` fields of each line it
/// prints that starts with `BENCH `.
pub(super) fn e2e_bench(
    bench: &str,
    env: &[(&str, String)],
) -> anyhow::Result<Vec<BTreeMap<String, String>>> {
    let output = cargo()
        .args(["bench", "--quiet", "--package", "tiledesk-e2e", "--bench", bench])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        bail!(
            "the {bench} benchmark failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("BENCH "))
        .map(|line| {
            line.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect())
}

/// Section 6, Tiledesk's real widget: time to the widget shown with no visitor interaction, the module with
/// `boot: "now"` against Tiledesk's own wait and against the tutorial's hand-written page, and where the time goes.
pub(super) fn real_widget(plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    step(
        "Tiledesk's real widget: time to shown, boot now against interaction, the tutorial and the inline-token floor (headless Chromium)",
    );
    crate::commands::setup_browser()?;
    crate::commands::widget::ensure_built()?;
    let rounds = if plan.quick { 2 } else { 5 };
    let token_delay = 50;
    let env = [
        ("BENCH_ROUNDS", rounds.to_string()),
        ("BENCH_TOKEN_DELAY", token_delay.to_string()),
    ];
    // BENCH real mode=now round=1 token_delay=50 shown=768.8 token=107.0 loader=37.8 boot=454.5 signin=580.4 chat=590.3
    const PHASES: [&str; 6] = ["token", "loader", "boot", "signin", "chat", "shown"];
    let mut times: BTreeMap<(String, &str), Vec<f64>> = BTreeMap::new();
    for fields in e2e_bench("real_widget", &env)? {
        let Some(mode) = fields.get("mode") else {
            bail!("unreadable line from the real widget benchmark: {fields:?}");
        };
        for phase in PHASES {
            if let Some(ms) = fields.get(phase).and_then(|v| v.parse::<f64>().ok()) {
                times.entry((mode.clone(), phase)).or_default().push(ms);
            }
        }
    }
    let cell = |mode: &str, phase: &str| {
        times
            .get(&(mode.to_owned(), phase))
            .map_or("n/a".to_owned(), |v| format!("{:.0}", median(v.clone())))
    };
    if cell("now", "shown") == "n/a" {
        bail!("the real widget benchmark printed no figures");
    }
    let mut table = String::from(
        "| page | token answered | loader loaded | widget booted | sign-in answered | chat token answered | **widget shown** |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (mode, label) in [
        ("now", "module, `boot: \"now\"` (default)"),
        ("interaction", "module, `boot: \"interaction\"`"),
        ("tutorial", "hand-written, Tiledesk's tutorial order"),
        (
            "inline",
            "hand-written floor: token inline in the page, loader booted at once",
        ),
    ] {
        let cells: Vec<String> = PHASES.iter().map(|p| cell(mode, p)).collect();
        writeln!(
            table,
            "| {label} | {} ms | {} ms | {} ms | {} ms | {} ms | **{} ms** |",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
        )?;
    }
    let (now, interaction, tutorial, inline) = (
        cell("now", "shown"),
        cell("interaction", "shown"),
        cell("tutorial", "shown"),
        cell("inline", "shown"),
    );
    let shown = |mode: &str| times.get(&(mode.to_owned(), "shown")).map(|v| median(v.clone()));
    let ratio = match (shown("now"), shown("inline")) {
        (Some(module), Some(floor)) if floor > 0.0 => format!("{:.2}", module / floor),
        _ => "n/a".to_owned(),
    };
    report.line(format!(
        "real Tiledesk widget, no visitor interaction: shown after {now} ms with boot \"now\", {interaction} ms with Tiledesk's wait, {tutorial} ms for the tutorial's page; the floor (token inline, no round trip) {inline} ms: module/floor {ratio} (goal <= 1.05)"
    ));
    report.commands.push(format!(
        "BENCH_ROUNDS={rounds} BENCH_TOKEN_DELAY={token_delay} cargo bench -p tiledesk-e2e --bench real_widget"
    ));
    report.sections.push(format!(
        "## The real Tiledesk widget: time to shown\n\n\
         Tiledesk's widget {} built from source (`cargo xtask widget`), the mock Tiledesk and mosquitto, the real \
         `tiledesk-auth` serving the page (`tests/e2e/benches/real_widget.rs`, page `bench/browser/real.html`). A fresh \
         headless Chromium per run, no stored session and no visitor interaction; the clock starts when the page asks \
         for the sign-in (after its load event and the module's instantiation) and stops when the widget reports the \
         visitor logged in and its container is shown. Each phase is when that request ended (the widget's boot: when \
         its first API request started), from the resource timing of the page and of the widget's iframe. The token \
         endpoint answers after {token_delay} ms. Median of {rounds} rounds, pages in rotating order, after one \
         unmeasured round that fills the HTTP cache.\n\n{table}\n\
         Where the time goes with `boot: \"now\"`: the token and the loader arrive in parallel within the first \
         ~100 ms; the widget's app (2.4 MB of JavaScript in an iframe) takes the next ~400 ms to boot and fetch its \
         settings; the module signs in as soon as it can call the widget; the widget's HTTP sign-in and chat token \
         follow within ~150 ms, and the chat connection (MQTT over websockets) and the show within the last ~180 ms. \
         Without the nudge, the loader waits for an interaction or 5 seconds before any of that starts, which is what \
         the other two rows pay: the tutorial's page also fetches the token first, which costs nothing here only \
         because the wait dwarfs it.\n\n\
         **Against the floor.** The last row is the fastest any front end can be with this widget: a page whose HTML \
         already holds the token (minted before the page loads, so no round trip), which inserts the loader at once, \
         boots it as soon as it has run, calls the sign-in directly at `onBeforeInit` and shows the widget on \
         `online`. The module with `boot: \"now\"` takes {ratio} times as long (goal: at most 1.05). The token \
         request runs while the widget's app boots, so it costs the module nothing as long as it answers before the \
         app does.\n",
        crate::commands::widget::VERSION
    ));
    Ok(())
}
