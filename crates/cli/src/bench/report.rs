//! What a bench found: per scenario, each contender's MiB/s (median, min–max), CPU-seconds
//! per GiB (user + system of its processes), peak RSS, and the plug-in's ratio to the best
//! peer of the row; printed as it goes, and written as Markdown and JSON with the machine.

use std::fmt::Write as _;

use serde::Serialize;

use super::measure::{stats, Sample};

const MIB: f64 = (1u64 << 20) as f64;
const GIB: f64 = (1u64 << 30) as f64;

/// Where a row goes in the plot: a series, by image size or by streams.
#[derive(Clone, Debug, Serialize)]
pub struct PlotPoint {
    pub series: String,
    pub axis: Axis,
    pub x: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Axis {
    Size,
    Streams,
}

#[derive(Debug, Serialize)]
pub struct RowResult {
    pub group: String,
    pub title: String,
    /// Bytes moved by one run of each contender.
    pub bytes: u64,
    pub plot: Option<PlotPoint>,
    pub entries: Vec<EntryResult>,
}

#[derive(Debug, Serialize)]
pub struct EntryResult {
    pub who: String,
    /// The row's subject (the plug-in); the others are its peers.
    pub subject: bool,
    pub command: String,
    pub samples: Vec<Sample>,
    /// Why each run that did not finish failed (a hung peer killed at the deadline, an exit
    /// status); the figures are those of the runs that finished, shown with this count.
    pub failures: Vec<String>,
}

impl EntryResult {
    /// "k of n runs failed: first reason", when any did.
    fn failed_note(&self) -> Option<String> {
        let first = self.failures.first()?;
        let n = self.samples.len() + self.failures.len();
        Some(format!("{} of {n} runs failed: {first}", self.failures.len()))
    }
}

/// One contender's figures.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Summary {
    pub mibs: f64,
    pub mibs_min: f64,
    pub mibs_max: f64,
    pub cpu_per_gib: f64,
    pub rss_mib: f64,
    pub runs: usize,
    /// The storage server's CPU-seconds per GiB during the runs (`--server-pids`), median.
    pub server_cpu_per_gib: Option<f64>,
}

impl RowResult {
    pub fn summary(&self, e: &EntryResult) -> Option<Summary> {
        if e.samples.is_empty() {
            return None;
        }
        let rates: Vec<f64> = e.samples.iter().map(|s| self.bytes as f64 / MIB / s.wall.max(1e-9)).collect();
        let cpus: Vec<f64> = e.samples.iter().map(|s| s.cpu / (self.bytes as f64 / GIB)).collect();
        let (mibs, mibs_min, mibs_max) = stats(&rates);
        let rss = e.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 / 1024.0;
        let server: Option<Vec<f64>> =
            e.samples.iter().map(|s| s.server_cpu.map(|c| c / (self.bytes as f64 / GIB))).collect();
        Some(Summary {
            mibs,
            mibs_min,
            mibs_max,
            cpu_per_gib: stats(&cpus).0,
            rss_mib: rss,
            runs: rates.len(),
            server_cpu_per_gib: server.map(|v| stats(&v).0),
        })
    }

    /// The fastest peer (median MiB/s) that ran.
    pub fn best_peer(&self) -> Option<(&EntryResult, Summary)> {
        self.entries
            .iter()
            .filter(|e| !e.subject)
            .filter_map(|e| self.summary(e).map(|s| (e, s)))
            .max_by(|a, b| a.1.mibs.total_cmp(&b.1.mibs))
    }

    pub fn subject(&self) -> Option<(&EntryResult, Summary)> {
        self.entries.iter().filter(|e| e.subject).find_map(|e| self.summary(e).map(|s| (e, s)))
    }

    /// Subject / best peer, MiB/s.
    pub fn ratio(&self) -> Option<f64> {
        Some(self.subject()?.1.mibs / self.best_peer()?.1.mibs)
    }

    /// The row as text, for the terminal.
    pub fn print(&self) -> String {
        let mut out = format!("{} — {}\n", self.group, self.title);
        for e in &self.entries {
            let _ = match (self.summary(e), e.failed_note()) {
                (Some(s), _) => writeln!(
                    out,
                    "  {:<34} {:>7.0} MiB/s ({:.0}–{:.0})  {:>5.2} CPU-s/GiB  {:>6.0} MiB RSS{}{}",
                    e.who,
                    s.mibs,
                    s.mibs_min,
                    s.mibs_max,
                    s.cpu_per_gib,
                    s.rss_mib,
                    s.server_cpu_per_gib.map_or(String::new(), |c| format!("  server {c:.2} CPU-s/GiB")),
                    match (e.subject, self.ratio(), self.best_peer()) {
                        (true, Some(r), Some((b, _))) => format!("  {r:.2}× {}", b.who),
                        _ => String::new(),
                    } + &e.failed_note().map_or(String::new(), |n| format!("  ({n})"))
                ),
                (None, Some(note)) => writeln!(out, "  {:<34} {note}", e.who),
                (None, None) => writeln!(out, "  {:<34} not run", e.who),
            };
        }
        out
    }
}

/// The machine and tools a table came from.
#[derive(Debug, Default, Serialize)]
pub struct Machine {
    pub when: String,
    pub host: String,
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub s3_server: Option<String>,
    pub nfs_dir: Option<String>,
    pub tools: Vec<(String, String)>,
    pub command: String,
    pub commit: String,
    pub runs: usize,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default();
        let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = mem
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        let uname = rustix_uname();
        Machine {
            when: jiff_now(),
            host: uname.0,
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: uname.1,
            command: std::env::args().collect::<Vec<_>>().join(" "),
            // The build's own identity: the bench may run from any directory.
            commit: vast_ost_engine::version::BUILD.to_string(),
            ..Machine::default()
        }
    }
}

fn rustix_uname() -> (String, String) {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default();
    (read("/proc/sys/kernel/hostname"), read("/proc/sys/kernel/osrelease"))
}

fn jiff_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    crate::fmt::utc(secs)
}

/// The whole report as Markdown: the machine, then one table.
pub fn markdown(rows: &[RowResult], m: &Machine, plot: Option<&str>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# vast-ost bench\n");
    let _ = writeln!(
        s,
        "{} on `{}`: {}, {} cores, {} GiB RAM, Linux {}; build `{}`; {} interleaved runs per contender, medians \
         (min–max).\n",
        m.when, m.host, m.cpu, m.cores, m.memory_gib, m.kernel, m.commit, m.runs
    );
    if let Some(s3) = &m.s3_server {
        let _ = writeln!(s, "- S3 server: {s3}");
    }
    if let Some(d) = &m.nfs_dir {
        let _ = writeln!(s, "- NFS path: {d}");
    }
    for (t, v) in &m.tools {
        let _ = writeln!(s, "- {t}: {v}");
    }
    let _ = writeln!(s, "- command: `{}`\n", m.command);
    let _ = writeln!(
        s,
        "CPU-s/GiB is user + system time of every process of the contender (for vast-ost, the CLI with the \
         plug-in inside it) per GiB moved; RSS is the largest peak of its processes. The ratio is vast-ost's \
         median MiB/s over the best peer's.\n"
    );
    if let Some(p) = plot {
        let _ = writeln!(s, "![throughput]({p})\n");
    }
    // The server's column, when its processes were watched (--server-pids).
    let server = rows
        .iter()
        .any(|r| r.entries.iter().any(|e| r.summary(e).is_some_and(|x| x.server_cpu_per_gib.is_some())));
    if server {
        let _ = writeln!(
            s,
            "Server CPU-s/GiB is what the storage server's processes on this machine spent per GiB during the \
             contender's runs: the box's cores are shared, so the server's CPU plus the client's bounds any \
             client's rate.\n"
        );
    }
    let (head, rule) = if server { (" server CPU-s/GiB |", "---|") } else { ("", "") };
    let _ = writeln!(
        s,
        "| scenario | contender | MiB/s (min–max) | CPU-s/GiB | peak RSS MiB |{head} vast-ost / best peer |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|{rule}---|");
    for r in rows {
        for (i, e) in r.entries.iter().enumerate() {
            let scen = if i == 0 { format!("{}: {}", r.group, r.title) } else { String::new() };
            // A name may hold a pipe ("vast-ost restore | backup"): escaped, or it splits the row.
            let name = e.who.replace('|', "\\|");
            let mut who = if e.subject { format!("**{name}**") } else { name };
            if let (Some(_), Some(note)) = (r.summary(e), e.failed_note()) {
                who = format!("{who} ({})", cell(&note));
            }
            let _ = match r.summary(e) {
                Some(x) => writeln!(
                    s,
                    "| {scen} | {who} | {:.0} ({:.0}–{:.0}) | {:.2} | {:.0} |{} {} |",
                    x.mibs,
                    x.mibs_min,
                    x.mibs_max,
                    x.cpu_per_gib,
                    x.rss_mib,
                    match (server, x.server_cpu_per_gib) {
                        (false, _) => String::new(),
                        (true, Some(c)) => format!(" {c:.2} |"),
                        (true, None) => " |".to_string(),
                    },
                    match (e.subject, r.ratio(), r.best_peer()) {
                        (true, Some(q), Some((b, _))) => format!("**{q:.2}×** ({})", b.who),
                        _ => String::new(),
                    }
                ),
                None => writeln!(
                    s,
                    "| {scen} | {who} | {} | | |{} |",
                    e.failed_note().map_or("not run".to_string(), |n| cell(&n)),
                    if server { " |" } else { "" },
                ),
            };
        }
    }
    s
}

/// A failure's text as a table cell: no pipes, and short: its start (what ran) and its end
/// (why it failed); the whole text is in the JSON and was printed as the run failed.
fn cell(note: &str) -> String {
    const HEAD: usize = 80;
    const TAIL: usize = 160;
    let s: Vec<char> = note.replace('|', "/").chars().collect();
    if s.len() <= HEAD + TAIL {
        return s.into_iter().collect();
    }
    let head: String = s[..HEAD].iter().collect();
    let tail: String = s[s.len() - TAIL..].iter().collect();
    format!("{head} … {tail}")
}

#[derive(Serialize)]
struct Json<'a> {
    machine: &'a Machine,
    rows: Vec<JsonRow<'a>>,
}

#[derive(Serialize)]
struct JsonRow<'a> {
    #[serde(flatten)]
    row: &'a RowResult,
    summaries: Vec<Option<Summary>>,
    ratio: Option<f64>,
}

pub fn json(rows: &[RowResult], m: &Machine) -> String {
    let rows = rows
        .iter()
        .map(|r| JsonRow {
            row: r,
            summaries: r.entries.iter().map(|e| r.summary(e)).collect(),
            ratio: r.ratio(),
        })
        .collect();
    serde_json::to_string_pretty(&Json { machine: m, rows }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(who: &str, subject: bool, walls: &[f64]) -> EntryResult {
        EntryResult {
            who: who.into(),
            subject,
            command: String::new(),
            samples: walls
                .iter()
                .map(|&w| Sample { wall: w, cpu: w / 2.0, rss_kib: 2048, server_cpu: None })
                .collect(),
            failures: Vec::new(),
        }
    }

    #[test]
    fn ratio_is_to_the_fastest_peer_by_median() {
        let mut r = RowResult {
            group: "S3".into(),
            title: "backup".into(),
            bytes: 1 << 30,
            plot: None,
            entries: vec![
                entry("vast-ost", true, &[2.0, 1.0, 4.0]),
                entry("slow", false, &[4.0, 4.0, 4.0]),
                entry("fast", false, &[2.0, 2.0, 8.0]),
                entry("vast-ost restore | backup", false, &[8.0]),
                EntryResult { failures: vec!["boom".into()], ..entry("broken", false, &[]) },
                EntryResult { failures: vec!["hung".into()], ..entry("flaky", false, &[1.0, 1.0]) },
            ],
        };
        let s = r.summary(&r.entries[0]).unwrap();
        assert_eq!((s.mibs, s.mibs_min, s.mibs_max), (512.0, 256.0, 1024.0));
        assert_eq!(s.cpu_per_gib, 1.0);
        // A peer with a failed run counts by the runs it finished, and says so.
        assert_eq!(r.best_peer().unwrap().0.who, "flaky");
        assert_eq!(r.ratio(), Some(0.5));
        r.entries.pop();
        assert_eq!(r.best_peer().unwrap().0.who, "fast");
        assert_eq!(r.ratio(), Some(1.0));
        let md = markdown(std::slice::from_ref(&r), &Machine::default(), Some("bench.png"));
        assert!(
            md.contains("| S3: backup | **vast-ost** | 512 (256–1024) | 1.00 | 2 | **1.00×** (fast) |"),
            "{md}"
        );
        assert!(md.contains("|  | broken | 1 of 1 runs failed: boom |"), "{md}");
        assert!(md.contains("|  | vast-ost restore \\| backup | 128 (128–128) |"), "{md}");
        let long =
            EntryResult { failures: vec![format!("{}why", "x|".repeat(400))], ..entry("long", false, &[]) };
        let note = cell(&long.failed_note().unwrap());
        assert!(
            note.chars().count() == 243
                && note.ends_with("why")
                && note.starts_with("1 of 1 runs failed: x/"),
            "{note}"
        );
        assert!(note.contains(" … ") && !note.contains('|'), "{note}");
        assert!(r.print().contains("1 of 1 runs failed: boom"));
        r.entries.push(EntryResult { failures: vec!["hung".into()], ..entry("flaky", false, &[8.0, 8.0]) });
        let md = markdown(std::slice::from_ref(&r), &Machine::default(), None);
        assert!(md.contains("|  | flaky (1 of 3 runs failed: hung) | 128 (128–128) |"), "{md}");
        assert!(r.print().contains("(1 of 3 runs failed: hung)"), "{}", r.print());
        // The server's CPU, when watched, gets its own column (per GiB moved, median).
        assert!(!md.contains("server CPU-s/GiB"));
        for (k, smp) in r.entries[0].samples.iter_mut().enumerate() {
            smp.server_cpu = Some([3.0, 1.0, 2.0][k]);
        }
        let md = markdown(std::slice::from_ref(&r), &Machine::default(), None);
        assert!(md.contains("| peak RSS MiB | server CPU-s/GiB | vast-ost / best peer |"), "{md}");
        assert!(md.contains("| 1.00 | 2 | 2.00 | **1.00×** (fast) |"), "{md}");
        assert!(md.contains("|  | slow | 256 (256–256) | 2.00 | 2 | |  |"), "{md}");
        assert!(r.print().contains("server 2.00 CPU-s/GiB"));
        let j: serde_json::Value = serde_json::from_str(&json(&[r], &Machine::default())).unwrap();
        assert_eq!(j["rows"][0]["ratio"], 1.0);
    }
}
