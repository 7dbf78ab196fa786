//! Small self-contained helpers shared by both planes: a seeded RNG (so ids, guids, keys and
//! fault decisions are reproducible), and UUID, ISO-8601, HTTP-date and duration formatting.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// SplitMix64: tiny, seedable, good enough for ids and fault dice (not for secrets that must
/// resist an attacker; this is a test double).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_be_bytes());
        bytes[8..].copy_from_slice(&b.to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
        let h = hex::encode(bytes);
        format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
    }
    pub fn string(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len).map(|_| alphabet[(self.next_u64() % alphabet.len() as u64) as usize] as char).collect()
    }
    pub fn hex(&mut self, len: usize) -> String {
        self.string(b"0123456789abcdef", len)
    }
}

pub const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

pub fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// (year, month, day) from days since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn split(t: Duration) -> (i64, u32, u32, u64, u64, u64, u32) {
    let secs = t.as_secs() as i64;
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400) as u64;
    (y, mo, d, s / 3600, (s / 60) % 60, s % 60, t.subsec_micros())
}

/// ISO-8601 with microseconds and `Z`, the way DRF renders datetimes.
pub fn iso8601(t: Duration) -> String {
    let (y, mo, d, h, mi, s, us) = split(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z")
}

/// S3 XML timestamps (`2024-01-01T00:00:00.000Z`).
pub fn iso8601_millis(t: Duration) -> String {
    let (y, mo, d, h, mi, s, us) = split(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z", us / 1000)
}

/// RFC 7231 HTTP-date (Last-Modified).
pub fn http_date(t: Duration) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (y, mo, d, h, mi, s, _) = split(t);
    let wd = DAYS[(t.as_secs() / 86_400 % 7) as usize];
    format!("{wd}, {d:02} {} {y:04} {h:02}:{mi:02}:{s:02} GMT", MONTHS[(mo - 1) as usize])
}

/// Parses the SigV4 `YYYYMMDDTHHMMSSZ` form into seconds since the epoch.
pub fn parse_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, sec) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // days_from_civil
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = days * 86_400 + h * 3600 + mi * 60 + sec;
    u64::try_from(t).ok()
}

/// Django `duration_string` (`[DD ]HH:MM:SS`), the format of `vms.access_token_lifetime`.
pub fn duration_string(d: Duration) -> String {
    let s = d.as_secs();
    let (days, rem) = (s / 86_400, s % 86_400);
    let hms = format!("{:02}:{:02}:{:02}", rem / 3600, (rem / 60) % 60, rem % 60);
    if days > 0 {
        format!("{days} {hms}")
    } else {
        hms
    }
}

/// Parses `[DD ]HH:MM:SS`, `MM:SS` or plain seconds (the VMS `[DD [HH:[MM:]]]ss` format).
pub fn parse_duration_string(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (days, rest) = match s.split_once(' ') {
        Some((d, r)) => (d.trim().parse::<u64>().ok()?, r.trim()),
        None => (0, s),
    };
    let mut total = 0u64;
    for part in rest.split(':') {
        total = total.checked_mul(60)?.checked_add(part.trim().parse::<u64>().ok()?)?;
    }
    Some(Duration::from_secs(days * 86_400 + total))
}

/// A view retention period (`30s`, `15m`, `12h`, `2d`, `1w`, `6M`, `1y`; m minutes, M months
/// of 30 days, y years of 365 days; a bare number is seconds), in seconds.
pub fn duration_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().ok()?;
    let unit = match &s[split..] {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "M" => 30 * 86_400,
        "y" => 365 * 86_400,
        _ => return None,
    };
    n.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let t = parse_amz_date("20130524T000000Z").unwrap();
        assert_eq!(t, 1_369_353_600);
        assert_eq!(iso8601(Duration::from_secs(t)), "2013-05-24T00:00:00.000000Z");
        assert_eq!(http_date(Duration::from_secs(t)), "Fri, 24 May 2013 00:00:00 GMT");
        assert_eq!(parse_amz_date("2013052T000000Z"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(duration_string(Duration::from_secs(300)), "00:05:00");
        assert_eq!(duration_string(Duration::from_secs(90_061)), "1 01:01:01");
        assert_eq!(parse_duration_string("1 01:01:01"), Some(Duration::from_secs(90_061)));
        assert_eq!(parse_duration_string("300"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration_string("x"), None);
    }
}
