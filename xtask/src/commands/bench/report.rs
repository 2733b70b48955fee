//! What a run measured, as BENCHMARKS.md: sections, summary lines, the machine, the commands, the curve's SVG.

use super::*;

/// What the run measured, as Markdown sections and summary lines.
#[derive(Default)]
pub(super) struct Report {
    pub(super) sections: Vec<String>,
    pub(super) summary: Vec<String>,
    pub(super) commands: Vec<String>,
}

impl Report {
    pub(super) fn line(&mut self, text: String) {
        println!("{text}");
        self.summary.push(text);
    }

    pub(super) fn markdown(&self, plan: &Plan) -> anyhow::Result<String> {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines().find_map(|l| {
                    l.strip_prefix("model name")
                        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
                })
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
        let rustc = command_output("rustc", &["--version"]).unwrap_or_default();
        let node = command_output("node", &["--version"]).unwrap_or_default();
        let wrk = Command::new("wrk")
            .arg("-v")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default();
        let mut md = String::new();
        writeln!(md, "# Benchmarks\n")?;
        writeln!(
            md,
            "Written by `cargo xtask bench{}` on {}. Every comparison ran both sides in the same invocation, \
             interleaved, after a warm-up; each figure is the median of {} rounds. Absolute numbers belong to this \
             machine; the ratios are the point.\n",
            if plan.quick { " --quick" } else { "" },
            date.trim(),
            plan.rounds
        )?;
        writeln!(md, "| machine | |\n|---|---|")?;
        writeln!(md, "| cores | {cores} |\n| CPU | {cpu} |")?;
        writeln!(
            md,
            "| toolchain | {} |\n| Node | {} |\n| load generator | {} |\n",
            rustc.trim(),
            node.trim(),
            wrk.trim()
        )?;
        writeln!(md, "## Summary\n")?;
        for line in &self.summary {
            writeln!(md, "- {line}")?;
        }
        writeln!(md)?;
        for section in &self.sections {
            writeln!(md, "{section}")?;
        }
        writeln!(md, "## Commands\n")?;
        writeln!(
            md,
            "Everything above comes from `cargo xtask bench`, which ran:\n\n```text"
        )?;
        for command in &self.commands {
            writeln!(md, "{command}")?;
        }
        writeln!(md, "```")?;
        Ok(md)
    }
}

/// The throughput/p99 curve as an SVG: connections on a log2 axis; req/s on the left axis, p99 on the right.
pub(super) fn curve_svg(points: &[(u32, Load)]) -> String {
    let (w, h) = (720.0, 400.0);
    let (left, right, top, bottom) = (70.0, 70.0, 40.0, 50.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max_c = points.iter().map(|(c, _)| *c).max().unwrap_or(1).max(2) as f64;
    let max_rps = nice(points.iter().map(|(_, l)| l.rps).fold(1.0, f64::max));
    let max_p99 = nice(points.iter().map(|(_, l)| l.p99_ms).fold(0.1, f64::max));
    let x = |c: u32| left + plot_w * (f64::from(c).log2() / max_c.log2());
    let y = |v: f64, max: f64| top + plot_h * (1.0 - v / max);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">tiledesk-auth POST /tokens: throughput and p99 against connections</text>\n",
        w / 2.0
    );
    // Axes and grid.
    for i in 0..=4 {
        let frac = f64::from(i) / 4.0;
        let gy = top + plot_h * (1.0 - frac);
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" y1=\"{gy}\" x2=\"{}\" y2=\"{gy}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#1f5fbf\">{:.0}</text>\
             <text x=\"{}\" y=\"{}\" fill=\"#c0392b\">{:.1}</text>",
            left + plot_w,
            left - 6.0,
            gy + 4.0,
            max_rps * frac,
            left + plot_w + 6.0,
            gy + 4.0,
            max_p99 * frac
        );
    }
    for (c, _) in points {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{c}</text>",
            x(*c),
            top + plot_h + 18.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">connections (log scale)</text>\n\
         <text x=\"16\" y=\"{}\" fill=\"#1f5fbf\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">requests/s</text>\n\
         <text x=\"{}\" y=\"{}\" fill=\"#c0392b\" transform=\"rotate(90 {} {})\" text-anchor=\"middle\">p99 latency (ms)</text>\n",
        left + plot_w / 2.0,
        h - 12.0,
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        w - 16.0,
        top + plot_h / 2.0,
        w - 16.0,
        top + plot_h / 2.0
    );
    for (color, value, max) in [
        ("#1f5fbf", (|l: &Load| l.rps) as fn(&Load) -> f64, max_rps),
        ("#c0392b", |l: &Load| l.p99_ms, max_p99),
    ] {
        let path: Vec<String> = points
            .iter()
            .map(|(c, l)| format!("{:.1},{:.1}", x(*c), y(value(l), max)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for (c, l) in points {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                x(*c),
                y(value(l), max)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// `value` rounded up to 1, 2 or 5 times a power of ten.
pub(super) fn nice(value: f64) -> f64 {
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= value)
        .unwrap_or(value)
}
