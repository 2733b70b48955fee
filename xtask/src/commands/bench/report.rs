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

/// What opens a note in BENCHMARKS.md: what a person wrote beside the measured figures (what was tried, why a figure
/// is what it is), which a run cannot write and must not lose.
const NOTES_BEGIN: &str = "<!-- notes -->";
/// What closes it.
const NOTES_END: &str = "<!-- /notes -->";

/// The notes of `document`, each with the `## ` heading of the section it is in (empty before the first).
fn notes(document: &str) -> Vec<(String, String)> {
    let (mut heading, mut found, mut open) = (String::new(), Vec::new(), None::<String>);
    for line in document.lines() {
        if let Some(block) = open.as_mut() {
            block.push_str(line);
            block.push('\n');
            if line.trim() == NOTES_END
                && let Some(block) = open.take()
            {
                found.push((heading.clone(), block));
            }
        } else if line.starts_with("## ") {
            heading = line.to_owned();
        } else if line.trim() == NOTES_BEGIN {
            open = Some(format!("{line}\n"));
        }
    }
    // One left open runs to the end of the file: kept whole, and closed.
    if let Some(block) = open {
        found.push((heading, format!("{block}{NOTES_END}\n")));
    }
    found
}

/// `fresh`, what a run wrote, with the notes of `existing`, the BENCHMARKS.md it replaces: each at the end of the
/// section of the same heading, in their order; those of a section the run did not write, at the end under their
/// heading, so that nothing written by hand is lost to a run.
pub(super) fn with_notes(fresh: &str, existing: &str) -> String {
    fn close(out: &mut String, heading: &str, notes: &mut Vec<(String, String)>) {
        notes.retain(|(of, block)| {
            if of != heading {
                return true;
            }
            if !out.ends_with("\n\n") {
                out.push('\n');
            }
            out.push_str(block);
            out.push('\n');
            false
        });
    }
    let mut notes = notes(existing);
    let (mut out, mut heading) = (String::new(), String::new());
    for line in fresh.lines() {
        if line.starts_with("## ") {
            close(&mut out, &heading, &mut notes);
            heading = line.to_owned();
        }
        out.push_str(line);
        out.push('\n');
    }
    close(&mut out, &heading, &mut notes);
    for (of, block) in notes {
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&format!("{of}\n\n{block}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `document` without its notes, as a run writes it.
    fn without_notes(document: &str) -> String {
        let mut out = String::new();
        let mut inside = false;
        for line in document.lines() {
            match line.trim() {
                NOTES_BEGIN => inside = true,
                NOTES_END => inside = false,
                _ if !inside => {
                    out.push_str(line);
                    out.push('\n');
                }
                _ => {}
            }
        }
        // The blank line after each note goes with it.
        out.replace("\n\n\n", "\n\n")
    }

    #[test]
    fn notes_stay_with_their_section_and_none_is_lost() {
        let existing = "# Benchmarks\n\nold preamble\n\n## A\n\nold A\n\n<!-- notes -->\nwhy A\n## not a heading\n\
                        <!-- /notes -->\n\n## Gone\n\n<!-- notes -->\nwhy Gone\n<!-- /notes -->\n\n## B\n\nold B\n\n\
                        <!-- notes -->\nwhy B, first\n<!-- /notes -->\n\n<!-- notes -->\nwhy B, second\n\
                        <!-- /notes -->\n";
        let fresh = "# Benchmarks\n\nnew preamble\n\n## B\n\nnew B\n\n## A\n\nnew A\n\n## C\n\nnew C\n";
        assert_eq!(
            with_notes(fresh, existing),
            "# Benchmarks\n\nnew preamble\n\n## B\n\nnew B\n\n<!-- notes -->\nwhy B, first\n<!-- /notes -->\n\n\
             <!-- notes -->\nwhy B, second\n<!-- /notes -->\n\n## A\n\nnew A\n\n<!-- notes -->\nwhy A\n\
             ## not a heading\n<!-- /notes -->\n\n## C\n\nnew C\n\n## Gone\n\n<!-- notes -->\nwhy Gone\n\
             <!-- /notes -->\n\n"
        );
        // Nothing to keep: the run's file as it wrote it.
        assert_eq!(with_notes(fresh, fresh), fresh);
        // A note left open is kept to the end, and closed.
        assert_eq!(
            notes("## A\n<!-- notes -->\nopen\n"),
            [(
                "## A".to_owned(),
                "<!-- notes -->\nopen\n<!-- /notes -->\n".to_owned()
            )]
        );
    }

    #[test]
    fn the_committed_benchmarks_come_back_whole_from_a_run_that_measured_the_same() {
        let committed = std::fs::read_to_string(crate::process::root().join("BENCHMARKS.md")).unwrap();
        assert!(
            notes(&committed).len() >= 3,
            "the written analysis of BENCHMARKS.md is marked as notes"
        );
        assert_eq!(with_notes(&without_notes(&committed), &committed), committed);
    }
}
