//! Formatting and parsing of what people type and read: sizes, rates, flag sets, times, tables.

use std::time::Duration;

const KIB: u64 = 1 << 10;

/// Parse a size such as `4096`, `256KiB`, `64MiB`, `1.5GiB`, `4G` or `10MB`.
///
/// `K`, `M`, `G`, `T` and the `KiB`... forms are binary (as `dd` reads them); `KB`, `MB`,
/// `GB`, `TB` are decimal. Case does not matter.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => KIB.pow(2),
        "g" | "gib" => KIB.pow(3),
        "t" | "tib" => KIB.pow(4),
        "kb" => 1000,
        "mb" => 1000u64.pow(2),
        "gb" => 1000u64.pow(3),
        "tb" => 1000u64.pow(4),
        other => return Err(format!("unknown size unit '{other}' in '{s}' (use B, KiB, MiB, GiB, TiB)")),
    };
    let bad = || format!("'{s}' is not a size (examples: 4096, 256KiB, 64MiB, 1.5GiB)");
    if num.is_empty() {
        return Err(bad());
    }
    if num.contains('.') {
        let v: f64 = num.parse().map_err(|_| bad())?;
        let bytes = v * mult as f64;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(format!("size '{s}' is too large"));
        }
        Ok(bytes.round() as u64)
    } else {
        let v: u64 = num.parse().map_err(|_| bad())?;
        v.checked_mul(mult).ok_or_else(|| format!("size '{s}' is too large"))
    }
}

/// `1.50 GiB`, `256 KiB`, `512 B`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < KIB {
        return format!("{n} B");
    }
    let mut v = n as f64 / KIB as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// `1.50 GiB (1610612736 bytes)`: readable and exact.
pub fn human_exact(n: u64) -> String {
    if n < KIB {
        format!("{n} bytes")
    } else {
        format!("{} ({n} bytes)", human(n))
    }
}

/// MiB per second; 0 for an instant (nothing meaningful to divide by).
pub fn mib_s(bytes: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s <= 0.0 {
        0.0
    } else {
        bytes as f64 / (1u64 << 20) as f64 / s
    }
}

/// `1.234 s, 321.0 MiB/s`.
pub fn rate(bytes: u64, d: Duration) -> String {
    format!("{:.3} s, {:.1} MiB/s", d.as_secs_f64(), mib_s(bytes, d))
}

/// Names of the bits set in `value`; bits nobody named are shown in hex so nothing is hidden.
pub fn flag_names(value: u64, names: &[(u64, &str)]) -> String {
    let mut out: Vec<String> =
        names.iter().filter(|(b, _)| value & b != 0).map(|(_, n)| n.to_string()).collect();
    let rest = names.iter().fold(value, |v, (b, _)| v & !b);
    if rest != 0 {
        out.push(format!("0x{rest:x}"));
    }
    if out.is_empty() {
        "none".into()
    } else {
        format!("{} (0x{value:x})", out.join(" | "))
    }
}

/// Seconds since the epoch as `2021-12-02 23:00:30 UTC` (no time-zone database needed).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem / 60 % 60, rem % 60)
}

/// A NetBackup image date (`1638486030`) with its readable form when it is a time.
pub fn image_date(date: &str) -> String {
    match date.parse::<u64>() {
        Ok(s) => format!("{date} ({})", utc(s)),
        Err(_) if date.is_empty() => "(none)".into(),
        Err(_) => date.to_string(),
    }
}

/// A plain text table: columns as wide as their widest cell, numbers right-aligned.
pub struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// `cols`: (header, right-aligned).
    pub fn new(cols: &[(&'static str, bool)]) -> Table {
        Table {
            headers: cols.iter().map(|c| c.0).collect(),
            right: cols.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut w: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(w.len()) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = w[i].saturating_sub(c.chars().count());
                if i > 0 {
                    s.push_str("  ");
                }
                if self.right[i] {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    if i + 1 < cells.len() {
                        s.push_str(&" ".repeat(pad));
                    }
                }
            }
            s.push('\n');
            s
        };
        let mut out = line(self.headers.clone());
        for r in &self.rows {
            out.push_str(&line(r.iter().map(String::as_str).collect()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("256KiB").unwrap(), 256 << 10);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("4gib").unwrap(), 4 << 30);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size(" 2 MiB ").unwrap(), 2 << 20);
        for bad in ["", "MiB", "1XB", "-1", "1..2", "99999999999999999999", "20000000TiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.50 KiB");
        assert_eq!(human(1 << 30), "1 GiB");
        assert_eq!(human((1 << 30) + 1), "1.00 GiB");
        assert_eq!(human_exact(1 << 20), "1 MiB (1048576 bytes)");
        assert_eq!(human(u64::MAX), "16 EiB");
    }

    #[test]
    fn flags_and_times() {
        let names = [(1, "A"), (4, "C")];
        assert_eq!(flag_names(5, &names), "A | C (0x5)");
        assert_eq!(flag_names(0, &names), "none");
        assert_eq!(flag_names(3, &names), "A | 0x2 (0x3)");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_638_486_030), "2021-12-02 23:00:30 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn table() {
        let mut t = Table::new(&[("NAME", false), ("SIZE", true)]);
        t.row(vec!["a".into(), "10".into()]);
        t.row(vec!["long".into(), "5".into()]);
        assert_eq!(t.render(), "NAME  SIZE\na       10\nlong     5\n");
    }
}
