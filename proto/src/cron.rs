//! Standard cron schedules, as AdvancedCronJob's `spec.schedule` takes them (the
//! grammar of `robfig/cron`'s `ParseStandard`, which OpenKruise uses): five fields
//! (minute, hour, day of month, month, day of week) with `*`, `?`, lists, ranges,
//! steps and month or weekday names; the descriptors `@yearly`, `@annually`,
//! `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly` and `@every <duration>`;
//! and an optional `TZ=<zone>` or `CRON_TZ=<zone>` prefix.
//!
//! [`Schedule::next_after`] finds the next activation in UTC; a schedule's time zone
//! is carried ([`Schedule::time_zone`]) for the caller to apply.

use std::fmt;

/// Why a schedule is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Nothing to parse.
    #[error("empty spec string")]
    Empty,
    /// Not five fields.
    #[error("expected exactly 5 fields, found {0}: {1:?}")]
    FieldCount(usize, String),
    /// An `@` word that is not a descriptor.
    #[error("unrecognized descriptor: {0}")]
    Descriptor(String),
    /// A bad `@every` duration.
    #[error("failed to parse duration {0:?}")]
    Duration(String),
    /// A bad `TZ=` zone name.
    #[error("provided bad location {0:?}")]
    Location(String),
    /// A field that does not parse.
    #[error("{field}: {reason}")]
    Field {
        /// `minute`, `hour`, `day of month`, `month` or `day of week`.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// One parsed schedule.
#[derive(Clone, PartialEq, Eq)]
pub struct Schedule {
    kind: Kind,
    time_zone: Option<String>,
}

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    /// Bit sets of the allowed values; bit 63 marks a field given as `*` or `?`.
    Fields { minute: u64, hour: u64, dom: u64, month: u64, dow: u64 },
    /// A fixed interval, in whole seconds (at least one).
    Every(i64),
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Fields { minute, hour, dom, month, dow } => f
                .debug_struct("Schedule")
                .field("minute", &format_args!("{minute:#x}"))
                .field("hour", &format_args!("{hour:#x}"))
                .field("dom", &format_args!("{dom:#x}"))
                .field("month", &format_args!("{month:#x}"))
                .field("dow", &format_args!("{dow:#x}"))
                .field("time_zone", &self.time_zone)
                .finish(),
            Kind::Every(s) => {
                f.debug_struct("Schedule").field("every", s).field("time_zone", &self.time_zone).finish()
            }
        }
    }
}

const STAR: u64 = 1 << 63;

struct Bounds {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Bounds = Bounds { name: "minute", min: 0, max: 59, names: &[] };
const HOUR: Bounds = Bounds { name: "hour", min: 0, max: 23, names: &[] };
const DOM: Bounds = Bounds { name: "day of month", min: 1, max: 31, names: &[] };
const MONTH: Bounds = Bounds {
    name: "month",
    min: 1,
    max: 12,
    names: &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
};
const DOW: Bounds =
    Bounds { name: "day of week", min: 0, max: 6, names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"] };

impl std::str::FromStr for Schedule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        parse(s)
    }
}

/// Parses a standard cron spec.
///
/// # Errors
/// A spec that is not five valid fields, a descriptor or `@every <duration>`.
pub fn parse(spec: &str) -> Result<Schedule, Error> {
    let mut spec = spec.trim_start();
    if spec.is_empty() {
        return Err(Error::Empty);
    }
    let mut time_zone = None;
    if let Some(rest) = spec.strip_prefix("TZ=").or_else(|| spec.strip_prefix("CRON_TZ=")) {
        let (zone, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if !is_zone_name(zone) {
            return Err(Error::Location(zone.to_owned()));
        }
        time_zone = Some(zone.to_owned());
        spec = rest.trim_start();
    }
    if spec.starts_with('@') {
        return Ok(Schedule { kind: descriptor(spec)?, time_zone });
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(Error::FieldCount(fields.len(), spec.to_owned()));
    }
    Ok(Schedule {
        kind: Kind::Fields {
            minute: field(fields[0], &MINUTE)?,
            hour: field(fields[1], &HOUR)?,
            dom: field(fields[2], &DOM)?,
            month: field(fields[3], &MONTH)?,
            dow: field(fields[4], &DOW)?,
        },
        time_zone,
    })
}

/// Whether `name` is a zone of the IANA time zone database (`UTC`,
/// `Asia/Shanghai`, `Etc/GMT+8`), spelled as the database spells it, as Go's
/// `time.LoadLocation` finds zones on Linux. The database is jiff's bundled copy of
/// the IANA one, so the answer does not depend on the machine's zoneinfo files.
pub fn is_zone_name(name: &str) -> bool {
    jiff::tz::db().get(name).is_ok_and(|tz| tz.iana_name() == Some(name))
}

fn all(b: &Bounds) -> u64 {
    (b.min..=b.max).fold(0, |acc, i| acc | 1 << i)
}

fn descriptor(spec: &str) -> Result<Kind, Error> {
    let fixed = |minute: u64, hour: u64, dom: u64, month: u64, dow: u64| Kind::Fields {
        minute,
        hour,
        dom,
        month,
        dow,
    };
    let any = |b: &Bounds| all(b) | STAR;
    Ok(match spec {
        "@yearly" | "@annually" => fixed(1, 1, 1 << 1, 1 << 1, any(&DOW)),
        "@monthly" => fixed(1, 1, 1 << 1, any(&MONTH), any(&DOW)),
        "@weekly" => fixed(1, 1, any(&DOM), any(&MONTH), 1),
        "@daily" | "@midnight" => fixed(1, 1, any(&DOM), any(&MONTH), any(&DOW)),
        "@hourly" => fixed(1, any(&HOUR), any(&DOM), any(&MONTH), any(&DOW)),
        _ => match spec.strip_prefix("@every ") {
            Some(d) => Kind::Every(duration(d.trim())?),
            None => return Err(Error::Descriptor(spec.to_owned())),
        },
    })
}

/// A Go duration (`1h30m`, `90s`, `1.5h`) in whole seconds, at least one.
fn duration(text: &str) -> Result<i64, Error> {
    let bad = || Error::Duration(text.to_owned());
    let mut rest = text;
    let mut nanos = 0f64;
    if rest.is_empty() || rest.starts_with('-') {
        return Err(bad());
    }
    rest = rest.strip_prefix('+').unwrap_or(rest);
    if rest == "0" {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[u..];
        nanos += value * unit;
    }
    // robfig/cron runs an interval under a second every second
    Ok(((nanos / 1e9) as i64).max(1))
}

fn field(text: &str, b: &Bounds) -> Result<u64, Error> {
    let fail = |reason: String| Error::Field { field: b.name, reason };
    let mut bits = 0;
    for part in text.split(',') {
        bits |= range(part, b).map_err(fail)?;
    }
    Ok(bits)
}

fn range(expr: &str, b: &Bounds) -> Result<u64, String> {
    let (range, step) = match expr.split_once('/') {
        Some((_, step)) if step.contains('/') => return Err(format!("too many slashes: {expr:?}")),
        Some((range, step)) => (range, Some(step)),
        None => (expr, None),
    };
    let mut extra = 0;
    let (start, mut end, single) = if range == "*" || range == "?" {
        extra = STAR;
        (b.min, b.max, false)
    } else {
        let mut bounds = range.split('-');
        let start = value(bounds.next().unwrap_or_default(), b)?;
        match (bounds.next(), bounds.next()) {
            (None, _) => (start, start, true),
            (Some(end), None) => (start, value(end, b)?, false),
            (Some(_), Some(_)) => return Err(format!("too many hyphens: {expr:?}")),
        }
    };
    let step = match step {
        None => 1,
        Some(s) => {
            let step: u32 = s.parse().map_err(|_| format!("failed to parse int from {s:?}"))?;
            if step == 0 {
                return Err(format!("step of range should be a positive number: {expr:?}"));
            }
            if single {
                end = b.max; // "N/step" means "N-max/step"
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
    };
    if start < b.min {
        return Err(format!("beginning of range ({start}) below minimum ({}): {expr:?}", b.min));
    }
    if end > b.max {
        return Err(format!("end of range ({end}) above maximum ({}): {expr:?}", b.max));
    }
    if start > end {
        return Err(format!("beginning of range ({start}) beyond end of range ({end}): {expr:?}"));
    }
    Ok((start..=end).step_by(step as usize).fold(extra, |acc, i| acc | 1 << i))
}

fn value(text: &str, b: &Bounds) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = b.names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + b.min);
    }
    text.parse().map_err(|_| format!("failed to parse int from {text:?}"))
}

impl Schedule {
    /// The `TZ=`/`CRON_TZ=` zone the spec named, if any.
    pub fn time_zone(&self) -> Option<&str> {
        self.time_zone.as_deref()
    }

    /// Whether the schedule fires at this UTC minute (always false for `@every`).
    pub fn matches(&self, t: Civil) -> bool {
        let Kind::Fields { minute, hour, month, .. } = self.kind else { return false };
        let has = |bits: u64, v: u32| bits & (1 << v) != 0;
        has(minute, t.minute) && has(hour, t.hour) && has(month, t.month) && self.day_matches(t)
    }

    /// The first activation strictly after `unix` (seconds since the epoch, UTC), or
    /// `None` when there is none within five years (`0 0 30 2 *`).
    pub fn next_after(&self, unix: i64) -> Option<i64> {
        if let Kind::Every(secs) = self.kind {
            return Some(unix + secs);
        }
        let mut t = unix.div_euclid(60) * 60 + 60;
        let limit = unix + 5 * 366 * 86_400;
        while t <= limit {
            let c = Civil::from_unix(t);
            let Kind::Fields { minute, hour, month, .. } = self.kind else { return None };
            if month & (1 << c.month) == 0 {
                let (y, m) = if c.month == 12 { (c.year + 1, 1) } else { (c.year, c.month + 1) };
                t = Civil { year: y, month: m, day: 1, hour: 0, minute: 0 }.to_unix();
            } else if !self.day_matches(c) {
                t = (t.div_euclid(86_400) + 1) * 86_400;
            } else if hour & (1 << c.hour) == 0 {
                t = (t.div_euclid(3_600) + 1) * 3_600;
            } else if minute & (1 << c.minute) == 0 {
                t += 60;
            } else {
                return Some(t);
            }
        }
        None
    }

    /// A day matches on both day fields when either is `*`, else on either one.
    fn day_matches(&self, c: Civil) -> bool {
        let Kind::Fields { dom, dow, .. } = self.kind else { return false };
        let (dom_ok, dow_ok) = (dom & (1 << c.day) != 0, dow & (1 << c.weekday()) != 0);
        if dom & STAR != 0 || dow & STAR != 0 { dom_ok && dow_ok } else { dom_ok || dow_ok }
    }
}

/// A UTC minute on the proleptic Gregorian calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    /// 0–23.
    pub hour: u32,
    /// 0–59.
    pub minute: u32,
}

impl Civil {
    /// The minute containing `unix` seconds since the epoch.
    pub fn from_unix(unix: i64) -> Self {
        let days = unix.div_euclid(86_400);
        let secs = unix.rem_euclid(86_400);
        // Howard Hinnant's civil_from_days
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil { year, month, day, hour: (secs / 3600) as u32, minute: (secs % 3600 / 60) as u32 }
    }

    /// Seconds since the epoch at the start of this minute.
    pub fn to_unix(self) -> i64 {
        let y = self.year - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400 + i64::from(self.hour) * 3600 + i64::from(self.minute) * 60
    }

    /// 0 = Sunday.
    pub fn weekday(self) -> u32 {
        (self.to_unix().div_euclid(86_400) + 4).rem_euclid(7) as u32
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn zones_exist_in_the_iana_database() {
        for name in ["UTC", "Asia/Shanghai", "America/Argentina/Buenos_Aires", "Etc/GMT+8", "Europe/Kyiv"] {
            assert!(is_zone_name(name), "{name}");
        }
        for name in ["", "Local", "Mars/Olympus_Mons", "asia/shanghai", "../etc", "Asia/"] {
            assert!(!is_zone_name(name), "{name}");
        }
    }
    use super::*;

    fn at(year: i64, month: u32, day: u32, hour: u32, minute: u32) -> i64 {
        Civil { year, month, day, hour, minute }.to_unix()
    }

    fn next(spec: &str, from: i64) -> Option<i64> {
        parse(spec).unwrap().next_after(from)
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(at(1970, 1, 1, 0, 0), 0);
        assert_eq!(at(2024, 2, 29, 12, 30), 1_709_209_800);
        for unix in (-5_000_000_000i64..5_000_000_000).step_by(86_399 * 37) {
            let c = Civil::from_unix(unix);
            assert_eq!(c.to_unix(), unix - unix.rem_euclid(60), "{c:?}");
        }
        assert_eq!(Civil::from_unix(0).weekday(), 4, "1970-01-01 was a Thursday");
    }

    #[test]
    fn standard_specs_parse() {
        for spec in [
            "* * * * *",
            "*/15 * * * *",
            "0 0 1 1 *",
            "5,10-20/5 3 ? JAN-mar sun,Sat",
            "0 9-17 * * 1-5",
            "30 2/3 * * *",
            "@hourly",
            "@daily",
            "@midnight",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
            "@every 1h30m",
            "TZ=Asia/Shanghai 0 8 * * *",
            "CRON_TZ=UTC @daily",
        ] {
            assert!(parse(spec).is_ok(), "{spec}: {:?}", parse(spec));
        }
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, reason) in [
            ("", "empty spec string"),
            ("* * * *", "expected exactly 5 fields, found 4"),
            ("0 0 * * * *", "expected exactly 5 fields, found 6"),
            ("60 * * * *", "minute: end of range (60) above maximum (59)"),
            ("* 24 * * *", "hour: end of range (24) above maximum (23)"),
            ("* * 0 * *", "day of month: beginning of range (0) below minimum (1)"),
            ("* * * 13 *", "month: end of range (13) above maximum (12)"),
            ("* * * * 7", "day of week: end of range (7) above maximum (6)"),
            ("5-1 * * * *", "minute: beginning of range (5) beyond end of range (1)"),
            ("*/0 * * * *", "minute: step of range should be a positive number"),
            ("1-2-3 * * * *", "minute: too many hyphens"),
            ("1/2/3 * * * *", "minute: too many slashes"),
            ("x * * * *", "minute: failed to parse int from \"x\""),
            ("* * * foo *", "month: failed to parse int"),
            ("@fortnightly", "unrecognized descriptor: @fortnightly"),
            ("@every soon", "failed to parse duration"),
            ("TZ=../etc @daily", "provided bad location"),
        ] {
            let e = parse(spec).unwrap_err().to_string();
            assert!(e.starts_with(reason), "{spec:?}: {e}");
        }
    }

    #[test]
    fn next_activations() {
        let from = at(2025, 3, 14, 10, 7);
        assert_eq!(next("*/15 * * * *", from), Some(at(2025, 3, 14, 10, 15)));
        assert_eq!(next("@hourly", from), Some(at(2025, 3, 14, 11, 0)));
        assert_eq!(next("@daily", from), Some(at(2025, 3, 15, 0, 0)));
        assert_eq!(next("@monthly", from), Some(at(2025, 4, 1, 0, 0)));
        assert_eq!(next("@yearly", from), Some(at(2026, 1, 1, 0, 0)));
        // 2025-03-14 is a Friday: the next Sunday is the 16th
        assert_eq!(next("@weekly", from), Some(at(2025, 3, 16, 0, 0)));
        assert_eq!(next("0 9 * * mon-fri", at(2025, 3, 14, 9, 0)), Some(at(2025, 3, 17, 9, 0)));
        // day of month OR day of week when both are restricted
        assert_eq!(next("0 0 20 * 0", from), Some(at(2025, 3, 16, 0, 0)));
        assert_eq!(next("0 0 29 2 *", from), Some(at(2028, 2, 29, 0, 0)));
        assert_eq!(next("0 0 30 2 *", from), None);
        assert_eq!(next("@every 90s", from), Some(from + 90));
        assert_eq!(next("@every 10ms", from), Some(from + 1));
        // strictly after: a matching minute is skipped
        assert_eq!(next("7 10 * * *", from), Some(at(2025, 3, 15, 10, 7)));
    }

    #[test]
    fn next_agrees_with_matches_minute_by_minute() {
        for spec in ["*/7 3-5 * * *", "0 0 1,15 * 3", "15 */6 ? FEB,aug *", "0 12 * * 6"] {
            let s = parse(spec).unwrap();
            let mut t = at(2023, 12, 30, 0, 0);
            for _ in 0..40 {
                let n = s.next_after(t).unwrap();
                assert!(s.matches(Civil::from_unix(n)), "{spec}: {:?}", Civil::from_unix(n));
                let mut m = t - t.rem_euclid(60) + 60;
                while m < n {
                    assert!(!s.matches(Civil::from_unix(m)), "{spec}: skipped {:?}", Civil::from_unix(m));
                    m += 60;
                }
                t = n;
            }
        }
    }
}
