//! The conditions of a policy, parsed once when a policy is saved or loaded: name lists (realms,
//! resolvers, users, administrators), client networks (IPv4/IPv6 CIDRs) and weekday/time
//! ranges. Each answers "does this context match, and why (not)".
//!
//! Pure functions over their inputs: no clock, no I/O, no allocation when a condition is only
//! tested (reasons are formatted on demand for explanations).

use std::fmt;
use std::net::IpAddr;

/// A name list: empty or `*` = any; `!name` (or `-name`) excludes; otherwise the name must be
/// listed. Realms compare case-insensitively, other names exactly.
#[derive(Debug, Clone, Default)]
pub struct NameList {
    include: Vec<String>,
    exclude: Vec<String>,
    any: bool,
    fold_case: bool,
}

impl NameList {
    /// Reads a list of `what` (realms, users, ...), case-folded when `fold_case`; says which item is not a name.
    pub fn parse(what: &str, items: &[String], fold_case: bool) -> Result<NameList, String> {
        let mut l = NameList { fold_case, ..NameList::default() };
        for raw in items {
            let item = raw.trim();
            let (neg, name) = match item.strip_prefix('!').or_else(|| item.strip_prefix('-')) {
                Some(n) => (true, n.trim()),
                None => (false, item),
            };
            if name.is_empty() || name.len() > 256 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("{what} '{}' is not a name", raw.escape_debug()));
            }
            if name == "*" {
                if neg {
                    return Err(format!("{what} '!*' would never match; deactivate the policy instead"));
                }
                l.any = true;
                continue;
            }
            let name = if fold_case { name.to_lowercase() } else { name.to_owned() };
            if neg {
                l.exclude.push(name);
            } else {
                l.include.push(name);
            }
        }
        if l.include.is_empty() {
            l.any = true;
        }
        Ok(l)
    }

    /// Whether the list lets every name through.
    pub fn is_any(&self) -> bool {
        self.any && self.exclude.is_empty()
    }

    fn eq(&self, a: &str, b: &str) -> bool {
        if self.fold_case {
            a.eq_ignore_ascii_case(b) || a.to_lowercase() == b
        } else {
            a == b
        }
    }

    /// Whether `value` (none: the request names none) passes the list.
    pub fn test(&self, value: Option<&str>) -> bool {
        if self.is_any() {
            return true;
        }
        let Some(v) = value else {
            return false;
        };
        !self.exclude.iter().any(|x| self.eq(v, x)) && (self.any || self.include.iter().any(|x| self.eq(v, x)))
    }

    /// Why `value` matches or not; `what` names the condition ("realm", "user", ...).
    pub fn reason(&self, what: &str, value: Option<&str>) -> String {
        if self.is_any() {
            return format!("any {what}");
        }
        let Some(v) = value else {
            return format!("no {what} given; the policy names {}", self.listing());
        };
        if self.exclude.iter().any(|x| self.eq(v, x)) {
            return format!("{what} {v} is excluded (!{v})");
        }
        if self.any {
            format!("{what} {v} is not excluded ({})", self.listing())
        } else if self.include.iter().any(|x| self.eq(v, x)) {
            format!("{what} {v} in {}", self.listing())
        } else {
            format!("{what} {v} not in {}", self.listing())
        }
    }

    fn listing(&self) -> String {
        let mut parts: Vec<String> = self.include.clone();
        parts.extend(self.exclude.iter().map(|x| format!("!{x}")));
        parts.join(", ")
    }
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or one address (`10.0.0.5`, `::1`). Host bits must be 0.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| format!("'{s}' is not an IPv4/IPv6 address or network"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}': the prefix length must be 0 to {max}"))?,
            None => max,
        };
        let c = Cidr { net, prefix };
        if c.masked(net) != net {
            return Err(format!("'{s}' has host bits set; did you mean {}/{prefix}?", c.masked(net)));
        }
        Ok(c)
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }

    /// Whether `ip` is in the network; an IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.net.is_ipv4() && self.masked(ip) == self.net
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// Client networks: empty = any; `!CIDR` (or `-CIDR`) excludes; otherwise the client must be
/// in one of the listed networks.
#[derive(Debug, Clone, Default)]
pub struct ClientList {
    include: Vec<Cidr>,
    exclude: Vec<Cidr>,
}

impl ClientList {
    /// Reads addresses and networks (`10.0.0.0/8`, `2001:db8::/32`, `!10.0.0.5`); says which item is not one.
    pub fn parse(items: &[String]) -> Result<ClientList, String> {
        let mut l = ClientList::default();
        for raw in items {
            let item = raw.trim();
            match item.strip_prefix('!').or_else(|| item.strip_prefix('-')) {
                Some(n) => l.exclude.push(Cidr::parse(n).map_err(|e| format!("client {e}"))?),
                None => l.include.push(Cidr::parse(item).map_err(|e| format!("client {e}"))?),
            }
        }
        Ok(l)
    }

    /// Whether the list lets every client through.
    pub fn is_any(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether `client` (none: a Unix-socket caller) passes the list.
    pub fn test(&self, client: Option<IpAddr>) -> bool {
        if self.is_any() {
            return true;
        }
        let Some(ip) = client else {
            return false;
        };
        !self.exclude.iter().any(|c| c.contains(ip))
            && (self.include.is_empty() || self.include.iter().any(|c| c.contains(ip)))
    }

    /// Why `client` passes or not, for explanations.
    pub fn reason(&self, client: Option<IpAddr>) -> String {
        if self.is_any() {
            return "any client".into();
        }
        let Some(ip) = client else {
            return format!("no client address given; the policy names {}", self.listing());
        };
        if let Some(c) = self.exclude.iter().find(|c| c.contains(ip)) {
            return format!("client {ip} is excluded by !{c}");
        }
        if self.include.is_empty() {
            return format!("client {ip} is not excluded ({})", self.listing());
        }
        match self.include.iter().find(|c| c.contains(ip)) {
            Some(c) => format!("client {ip} in {c}"),
            None => format!("client {ip} not in {}", self.listing()),
        }
    }

    fn listing(&self) -> String {
        let mut parts: Vec<String> = self.include.iter().map(Cidr::to_string).collect();
        parts.extend(self.exclude.iter().map(|c| format!("!{c}")));
        parts.join(", ")
    }
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A moment as a policy sees it: local weekday (0 = Monday) and minute of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// Monday is 0.
    pub weekday: usize,
    /// Minutes since local midnight.
    pub minute: u16,
    /// The offset the local time was computed with, in seconds east of UTC.
    pub utc_offset_s: i32,
}

impl LocalTime {
    /// From Unix seconds and an offset east of UTC.
    pub fn at(unix_s: i64, utc_offset_s: i32) -> LocalTime {
        let local = unix_s.saturating_add(i64::from(utc_offset_s));
        let day = local.div_euclid(86_400);
        let sec = local.rem_euclid(86_400);
        // 1970-01-01 was a Thursday (index 3).
        let weekday = usize::try_from((day + 3).rem_euclid(7)).unwrap_or(0);
        LocalTime { weekday, minute: u16::try_from(sec / 60).unwrap_or(0), utc_offset_s }
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = DAYS.get(self.weekday).copied().unwrap_or("?");
        write!(f, "{day} {:02}:{:02} ", self.minute / 60, self.minute % 60)?;
        if self.utc_offset_s == 0 {
            f.write_str("UTC")
        } else {
            let sign = if self.utc_offset_s < 0 { '-' } else { '+' };
            let abs = self.utc_offset_s.unsigned_abs();
            write!(f, "UTC{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct TimeRange {
    days: [bool; 7],
    start: u16,
    end: u16,
}

impl TimeRange {
    fn test(&self, t: LocalTime) -> bool {
        let today = self.days.get(t.weekday).copied().unwrap_or(false);
        if self.start < self.end {
            today && (self.start..self.end).contains(&t.minute)
        } else {
            // Across midnight: from `start` on a listed day until `end` on the day after.
            let yesterday = self.days.get((t.weekday + 6) % 7).copied().unwrap_or(false);
            (today && t.minute >= self.start) || (yesterday && t.minute < self.end)
        }
    }
}

/// Weekday/time ranges in privacyIDEA's syntax: comma-separated `DAYS: HH[:MM]-HH[:MM]`, where
/// DAYS is a day (`Mon`) or a range of days (`Mon-Fri`, `Fri-Mon` wraps), e.g.
/// `Mon-Fri: 08:00-18:00, Sat: 9-12`. The end is exclusive; `24:00` ends at midnight; an end
/// before the start runs across midnight into the next day. Empty text: always.
#[derive(Debug, Clone, Default)]
pub struct TimeSpec {
    text: String,
    ranges: Vec<TimeRange>,
}

fn parse_day(s: &str) -> Option<usize> {
    DAYS.iter().position(|d| d.eq_ignore_ascii_case(s.trim()))
}

fn parse_clock(s: &str) -> Option<u16> {
    let (h, m) = match s.trim().split_once(':') {
        Some((h, m)) => (h.trim(), m.trim()),
        None => (s.trim(), "0"),
    };
    if h.is_empty() || h.len() > 2 || m.is_empty() || m.len() > 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    (h < 24 && m < 60 || h == 24 && m == 0).then_some(h * 60 + m)
}

impl TimeSpec {
    /// Reads privacyIDEA's `DAYS: HH:MM-HH:MM` ranges, separated by commas; empty: any time.
    pub fn parse(text: &str) -> Result<TimeSpec, String> {
        let text = text.trim();
        let mut spec = TimeSpec { text: text.to_owned(), ranges: Vec::new() };
        if text.is_empty() {
            return Ok(spec);
        }
        for part in text.split(',') {
            let part = part.trim();
            let bad = |why: &str| {
                format!("time '{part}' {why}; write DAYS: HH:MM-HH:MM, e.g. 'Mon-Fri: 08:00-18:00' (days Mon..Sun)")
            };
            let (days, hours) = part.split_once(':').ok_or_else(|| bad("has no ':' after the days"))?;
            let mut set = [false; 7];
            match days.split_once('-') {
                Some((a, b)) => {
                    let a = parse_day(a).ok_or_else(|| bad("names an unknown day"))?;
                    let b = parse_day(b).ok_or_else(|| bad("names an unknown day"))?;
                    let mut d = a;
                    loop {
                        if let Some(x) = set.get_mut(d) {
                            *x = true;
                        }
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => {
                    let d = parse_day(days).ok_or_else(|| bad("names an unknown day"))?;
                    if let Some(x) = set.get_mut(d) {
                        *x = true;
                    }
                }
            }
            let (start, end) = hours.split_once('-').ok_or_else(|| bad("has no time range"))?;
            let start = parse_clock(start).filter(|s| *s < 24 * 60).ok_or_else(|| bad("has a bad start time"))?;
            let end = parse_clock(end).ok_or_else(|| bad("has a bad end time"))?;
            if start == end {
                return Err(bad("is empty (start = end); for a whole day write 00:00-24:00"));
            }
            spec.ranges.push(TimeRange { days: set, start, end });
        }
        Ok(spec)
    }

    /// Whether every time passes.
    pub fn is_any(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether `t` lies in one of the ranges.
    pub fn test(&self, t: LocalTime) -> bool {
        self.is_any() || self.ranges.iter().any(|r| r.test(t))
    }

    /// Why `t` passes or not, for explanations.
    pub fn reason(&self, t: LocalTime) -> String {
        if self.is_any() {
            "any time".into()
        } else if self.test(t) {
            format!("{t} in {}", self.text)
        } else {
            format!("{t} not in {}", self.text)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    /// 2024-01-01 was a Monday; minutes into that week.
    fn at(day: i64, h: i64, m: i64) -> LocalTime {
        LocalTime::at(1_704_067_200 + day * 86_400 + h * 3600 + m * 60, 0)
    }

    #[test]
    fn cidr_v4_and_v6() {
        let c = ClientList::parse(&list(&["192.168.0.0/16", "10.0.0.5", "2001:db8::/32"])).unwrap();
        assert!(c.test(Some(ip("192.168.44.1"))));
        assert!(c.test(Some(ip("10.0.0.5"))));
        assert!(!c.test(Some(ip("10.0.0.6"))));
        assert!(c.test(Some(ip("2001:db8:1::7"))));
        assert!(!c.test(Some(ip("2001:db9::1"))));
        assert!(c.test(Some(ip("::ffff:192.168.1.1"))), "IPv4-mapped counts as IPv4");
        assert!(!c.test(None));
        assert_eq!(
            c.reason(Some(ip("172.16.0.1"))),
            "client 172.16.0.1 not in 192.168.0.0/16, 10.0.0.5/32, 2001:db8::/32"
        );
        assert_eq!(c.reason(Some(ip("192.168.0.9"))), "client 192.168.0.9 in 192.168.0.0/16");
        let all = ClientList::parse(&list(&["0.0.0.0/0", "::/0"])).unwrap();
        assert!(all.test(Some(ip("8.8.8.8"))) && all.test(Some(ip("::1"))));
    }

    #[test]
    fn cidr_exclusions_and_errors() {
        let c = ClientList::parse(&list(&["172.16.0.0/24", "!172.16.0.17"])).unwrap();
        assert!(c.test(Some(ip("172.16.0.18"))));
        assert!(!c.test(Some(ip("172.16.0.17"))));
        assert_eq!(c.reason(Some(ip("172.16.0.17"))), "client 172.16.0.17 is excluded by !172.16.0.17/32");
        let only_not = ClientList::parse(&list(&["-fe80::/10"])).unwrap();
        assert!(only_not.test(Some(ip("10.1.1.1"))));
        assert!(!only_not.test(Some(ip("fe80::1"))));
        let e = Cidr::parse("10.0.0.5/8").unwrap_err();
        assert!(e.contains("did you mean 10.0.0.0/8"), "{e}");
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("2001:db8::/129").is_err());
        assert!(Cidr::parse("example.com").is_err());
    }

    #[test]
    fn names() {
        let u = NameList::parse("user", &list(&["alice", "bob"]), false).unwrap();
        assert!(u.test(Some("alice")) && !u.test(Some("Alice")) && !u.test(Some("carol")) && !u.test(None));
        assert_eq!(u.reason("user", Some("carol")), "user carol not in alice, bob");
        let not_admin = NameList::parse("user", &list(&["*", "!admin"]), false).unwrap();
        assert!(not_admin.test(Some("alice")) && !not_admin.test(Some("admin")));
        let realms = NameList::parse("realm", &list(&["Corp"]), true).unwrap();
        assert!(realms.test(Some("corp")) && realms.test(Some("CORP")) && !realms.test(Some("lab")));
        assert!(NameList::parse("user", &list(&[]), false).unwrap().test(None));
        assert!(NameList::parse("user", &list(&["a b"]), false).is_err());
    }

    #[test]
    fn weekday_and_hours() {
        let t = TimeSpec::parse("Mon-Fri: 08:00-18:00").unwrap();
        assert!(t.test(at(0, 8, 0)));
        assert!(t.test(at(4, 17, 59)));
        assert!(!t.test(at(4, 18, 0)), "the end is exclusive");
        assert!(!t.test(at(0, 7, 59)));
        assert!(!t.test(at(5, 12, 0)), "Saturday");
        assert_eq!(t.reason(at(5, 12, 0)), "Sat 12:00 UTC not in Mon-Fri: 08:00-18:00");
        let several = TimeSpec::parse("Sat: 9-12, Sun: 10:30-11").unwrap();
        assert!(several.test(at(5, 9, 0)) && several.test(at(6, 10, 45)) && !several.test(at(6, 11, 0)));
        let wrap = TimeSpec::parse("Fri-Mon: 00:00-24:00").unwrap();
        assert!(
            wrap.test(at(4, 0, 0)) && wrap.test(at(6, 23, 59)) && wrap.test(at(0, 12, 0)) && !wrap.test(at(1, 0, 0))
        );
    }

    #[test]
    fn across_midnight() {
        let night = TimeSpec::parse("Fri: 22:00-06:00").unwrap();
        assert!(night.test(at(4, 23, 0)), "Friday night");
        assert!(night.test(at(5, 5, 59)), "Saturday early morning belongs to Friday's range");
        assert!(!night.test(at(5, 6, 0)));
        assert!(!night.test(at(5, 23, 0)), "Saturday night is not listed");
        assert!(!night.test(at(3, 23, 0)));
        assert!(!night.test(at(4, 5, 0)), "Friday early morning belongs to Thursday");
    }

    #[test]
    fn time_zone_offset_moves_the_local_time() {
        // Sunday 23:30 UTC is Monday 00:30 at UTC+01:00.
        let t = LocalTime::at(1_704_067_200 - 1800, 3600);
        assert_eq!((t.weekday, t.minute), (0, 30));
        assert_eq!(t.to_string(), "Mon 00:30 UTC+01:00");
        assert_eq!(LocalTime::at(1_704_067_200, -5 * 3600).to_string(), "Sun 19:00 UTC-05:00");
    }

    #[test]
    fn bad_time_specs_say_why() {
        for bad in ["Mon-Fri", "Mon-Fri 08:00-18:00", "Mo: 8-9", "Mon: 8", "Mon: 25-26", "Mon: 8:60-9", "Mon: 8-8"] {
            let e = TimeSpec::parse(bad).unwrap_err();
            assert!(e.contains("DAYS: HH:MM-HH:MM"), "{bad}: {e}");
        }
        assert!(TimeSpec::parse("").unwrap().is_any());
    }
}
