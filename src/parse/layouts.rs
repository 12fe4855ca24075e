//! Header classification of ONE physical log line, with no state and no allocation.
//!
//! `parse_line` looks at a single line as it arrives from Flume (or from a file) and decides
//! whether it starts a new record (`LineKind::Header`) or belongs to the record above it
//! (`LineKind::Continuation`: stack frames, `Caused by:`, STARTUP_MSG banners, indented dumps).
//! For headers it recognises the layout (see `crate::domain::Layout`), and slices out the level,
//! the wall-clock time, logger, thread, message and, where the line carries one, the host.
//!
//! Everything here is hand-written byte-level matching: fixed digit positions for timestamps,
//! exact level tokens, and small scans for the `] `, `: `, ` - ` separators. Every slice goes
//! through `str::get`, `split_at_checked` or `strip_prefix`, so no input (binary junk, multi-byte
//! UTF-8 right at a separator, truncated headers) can make it panic. The joiner
//! (`super::joiner`) uses the result to glue continuation lines onto their header per stream.

use crate::domain::{Layout, Level};

/// Whether a physical line opens a record or continues the previous one of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineKind {
    Header,
    Continuation,
}

/// Wall-clock time as written in the line: no zone, optional year (syslog has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalTime {
    pub year: Option<i32>,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

impl LocalTime {
    /// Epoch milliseconds treating the wall clock as UTC; `year` falls back to `default_year`.
    /// Returns `None` for out-of-range fields (month 13, 30 February, hour 24, ...).
    pub fn to_epoch_ms(&self, default_year: i32) -> Option<i64> {
        let year = self.year.unwrap_or(default_year);
        if !(1..=12).contains(&self.month)
            || self.day < 1
            || self.day > days_in_month(year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
            || self.millis > 999
        {
            return None;
        }
        let days = days_from_civil(i64::from(year), self.month, self.day);
        let secs =
            i64::from(self.hour) * 3600 + i64::from(self.minute) * 60 + i64::from(self.second);
        days.checked_mul(86_400_000)?
            .checked_add(secs * 1000 + i64::from(self.millis))
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
/// `month` must be 1..=12 (checked by the caller).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let m = i64::from(month);
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Year of the civil date holding `days` since 1970-01-01 (inverse of `days_from_civil`).
pub(crate) fn year_from_days(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400;
    if month <= 2 { y + 1 } else { y }
}

/// One physical line, classified. All string fields borrow from the input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedLine<'a> {
    pub kind: LineKind,
    /// Layout of a header line; `Layout::OrphanContinuation` for continuation lines
    /// (a continuation seen on its own has no record to join yet).
    pub layout: Layout,
    pub level: Level,
    /// Wall-clock time written in the line (no zone).
    pub time: Option<LocalTime>,
    pub logger: &'a str,
    pub thread: &'a str,
    /// The message part of a header; the whole line for continuation and raw lines.
    pub message: &'a str,
    /// Host written in the line itself (syslog host field, `<host>: ` console prefix).
    pub host: Option<&'a str>,
}

impl<'a> ParsedLine<'a> {
    fn continuation(line: &'a str) -> Self {
        ParsedLine {
            kind: LineKind::Continuation,
            layout: Layout::OrphanContinuation,
            level: Level::Unknown,
            time: None,
            logger: "",
            thread: "",
            message: line,
            host: None,
        }
    }

    fn raw(line: &'a str, level: Level) -> Self {
        ParsedLine {
            kind: LineKind::Header,
            layout: Layout::Raw,
            level,
            time: None,
            logger: "",
            thread: "",
            message: line,
            host: None,
        }
    }

    fn header(layout: Layout, level: Level, time: Option<LocalTime>, message: &'a str) -> Self {
        ParsedLine {
            kind: LineKind::Header,
            layout,
            level,
            time,
            logger: "",
            thread: "",
            message,
            host: None,
        }
    }

    fn with(mut self, logger: &'a str, thread: &'a str) -> Self {
        self.logger = logger;
        self.thread = thread;
        self
    }
}

/// Classify one physical line (one trailing `\r` is ignored). Never panics, never allocates.
pub fn parse_line(line: &str) -> ParsedLine<'_> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let b = line.as_bytes();
    let Some(&first) = b.first() else {
        return ParsedLine::continuation(line);
    };
    if first.is_ascii_whitespace() {
        return ParsedLine::continuation(line);
    }
    if first.is_ascii_digit() {
        let parsed = parse_iso_family(line)
            .or_else(|| parse_cli_h2(line))
            .or_else(|| parse_flume_file(line))
            .or_else(|| parse_hdfs_legacy(line));
        if let Some(p) = parsed {
            return p;
        }
    } else if first.is_ascii_uppercase()
        && let Some(p) = parse_syslog(line)
    {
        return p;
    }
    classify_other(line)
}

// ---------------------------------------------------------------------------------------------
// Small byte helpers

#[inline]
fn dig(b: &[u8], i: usize) -> Option<u32> {
    match b.get(i) {
        Some(&c) if c.is_ascii_digit() => Some(u32::from(c - b'0')),
        _ => None,
    }
}

#[inline]
fn d2(b: &[u8], i: usize) -> Option<u32> {
    Some(dig(b, i)? * 10 + dig(b, i + 1)?)
}

#[inline]
fn d3(b: &[u8], i: usize) -> Option<u32> {
    Some(dig(b, i)? * 100 + dig(b, i + 1)? * 10 + dig(b, i + 2)?)
}

#[inline]
fn d4(b: &[u8], i: usize) -> Option<u32> {
    Some(d2(b, i)? * 100 + d2(b, i + 2)?)
}

#[inline]
fn byte_is(b: &[u8], i: usize, c: u8) -> bool {
    b.get(i) == Some(&c)
}

/// Reject impossible clock/date fields so that digits in message text are not taken as a header.
fn plausible(t: &LocalTime) -> bool {
    (1..=12).contains(&t.month)
        && (1..=31).contains(&t.day)
        && t.hour <= 23
        && t.minute <= 59
        && t.second <= 60
}

/// `HH:MM:SS` at `i`.
fn hms(b: &[u8], i: usize) -> Option<(u32, u32, u32)> {
    if !byte_is(b, i + 2, b':') || !byte_is(b, i + 5, b':') {
        return None;
    }
    Some((d2(b, i)?, d2(b, i + 3)?, d2(b, i + 6)?))
}

fn month_from_name(b: &[u8]) -> Option<u32> {
    Some(match b {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

/// Text after byte `i`, where byte `i - 1` is known to be ASCII (so `i` is a char boundary).
#[inline]
fn tail(s: &str, i: usize) -> Option<&str> {
    s.get(i..)
}

/// A log4j level token followed by one or more spaces (`%-5p` pads with spaces).
/// Returns the level and the text after the padding.
fn take_level(s: &str) -> Option<(Level, &str)> {
    let sp = memchr::memchr(b' ', s.as_bytes())?;
    let (tok, rest) = s.split_at_checked(sp)?;
    let level = Level::from_log4j(tok)?;
    Some((level, rest.trim_start_matches(' ')))
}

/// `logger: message` where the logger has no spaces. Also accepts `logger:` at end of line
/// (empty message whose trailing space was trimmed).
fn split_logger(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let p = memchr::memchr2(b':', b' ', b)?;
    if p == 0 || b.get(p) != Some(&b':') {
        return None;
    }
    let logger = s.get(..p)?;
    match b.get(p + 1) {
        None => Some((logger, "")),
        Some(b' ') => Some((logger, s.get(p + 2..)?)),
        Some(_) => None,
    }
}

/// Level, then either `[thread] logger: msg` (container) or `logger: msg` (daemon).
/// Returns (layout-was-container, level, logger, thread, message).
fn level_thread_logger(s: &str) -> Option<(bool, Level, &str, &str, &str)> {
    let (level, rest) = take_level(s)?;
    if let Some(inner) = rest.strip_prefix('[')
        && let Some((thread, logger, msg)) = bracket_thread_logger(inner)
    {
        return Some((true, level, logger, thread, msg));
    }
    match split_logger(rest) {
        Some((logger, msg)) => Some((false, level, logger, "", msg)),
        None => Some((false, level, "", "", rest)),
    }
}

/// `thread] logger: msg` where the thread may itself contain spaces, `:` and brackets:
/// the first `] ` that is followed by a valid `logger: ` ends the thread.
fn bracket_thread_logger(inner: &str) -> Option<(&str, &str, &str)> {
    let b = inner.as_bytes();
    let mut from = 0usize;
    while let Some(off) = b.get(from..).and_then(|r| memchr::memchr(b']', r)) {
        let p = from + off;
        if b.get(p + 1) == Some(&b' ')
            && let Some((logger, msg)) = inner.get(p + 2..).and_then(split_logger)
        {
            return Some((inner.get(..p)?, logger, msg));
        }
        from = p + 1;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Layouts starting with a digit

/// `yyyy-MM-dd HH:mm:ss,SSS ` (log4j ISO8601; `T` and `.` also accepted).
fn iso_time(b: &[u8]) -> Option<LocalTime> {
    if !byte_is(b, 4, b'-') || !byte_is(b, 7, b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b' ' | b'T')) || !matches!(b.get(19), Some(b',' | b'.')) {
        return None;
    }
    if !byte_is(b, 23, b' ') {
        return None;
    }
    let (hour, minute, second) = hms(b, 11)?;
    let t = LocalTime {
        year: Some(i32::try_from(d4(b, 0)?).ok()?),
        month: d2(b, 5)?,
        day: d2(b, 8)?,
        hour,
        minute,
        second,
        millis: d3(b, 20)?,
    };
    plausible(&t).then_some(t)
}

/// Everything that starts with an ISO8601 timestamp: Log4j, Container, ZooKeeper, Flume console.
fn parse_iso_family(line: &str) -> Option<ParsedLine<'_>> {
    let time = iso_time(line.as_bytes())?;
    let rest = tail(line, 24)?;
    if let Some(r) = rest.strip_prefix("- ") {
        return parse_zookeeper_body(r, time);
    }
    if let Some(r) = rest.strip_prefix("[myid:") {
        // ZooKeeper 3.5+: `%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n`
        let (_, body) = r.split_once("] - ")?;
        return parse_zookeeper_body(body, time);
    }
    if let Some(r) = rest.strip_prefix('(') {
        return parse_flume_console_body(r, time);
    }
    let (container, level, logger, thread, msg) = level_thread_logger(rest)?;
    let layout = if container {
        Layout::Container
    } else {
        Layout::Log4j
    };
    Some(ParsedLine::header(layout, level, Some(time), msg).with(logger, thread))
}

/// After `<date> - ` (or `<date> [myid:N] - `): `LEVEL [thread:Class@line] - msg`.
fn parse_zookeeper_body(s: &str, time: LocalTime) -> Option<ParsedLine<'_>> {
    let (level, rest) = take_level(s)?;
    let header = ParsedLine::header(Layout::Zookeeper, level, Some(time), rest);
    let Some(inner) = rest.strip_prefix('[') else {
        return Some(header);
    };
    let Some((loc, msg)) = inner.split_once("] - ").or_else(|| {
        inner
            .strip_suffix("] -")
            .or_else(|| inner.strip_suffix(']'))
            .map(|l| (l, ""))
    }) else {
        return Some(header);
    };
    let (thread, class_at) = loc.rsplit_once(':').unwrap_or(("", loc));
    let logger = class_at.split_once('@').map_or(class_at, |(c, _)| c);
    Some(ParsedLine::header(Layout::Zookeeper, level, Some(time), msg).with(logger, thread))
}

/// After `<date> (`: `thread) [LEVEL - Class.method(File.java:N)] msg`.
fn parse_flume_console_body(s: &str, time: LocalTime) -> Option<ParsedLine<'_>> {
    let b = s.as_bytes();
    let mut from = 0usize;
    while let Some(off) = b.get(from..).and_then(|r| memchr::memchr(b')', r)) {
        let p = from + off;
        from = p + 1;
        let Some(after) = s.get(p + 1..).and_then(|a| a.strip_prefix(" [")) else {
            continue;
        };
        let Some((level_tok, rest)) = after.split_once(" - ") else {
            continue;
        };
        let Some(level) = Level::from_log4j(level_tok) else {
            continue;
        };
        let (loc_tok, msg) = rest.split_once(' ').unwrap_or((rest, ""));
        let Some(loc) = loc_tok.strip_suffix(']') else {
            continue;
        };
        let thread = s.get(..p)?;
        let method = loc.split_once('(').map_or(loc, |(m, _)| m);
        let logger = method.rsplit_once('.').map_or(method, |(c, _)| c);
        return Some(
            ParsedLine::header(Layout::FlumeConsole, level, Some(time), msg).with(logger, thread),
        );
    }
    None
}

/// `yy/MM/dd HH:mm:ss LEVEL logger: msg` (Hadoop 2 CLI console, Spark).
fn parse_cli_h2(line: &str) -> Option<ParsedLine<'_>> {
    let b = line.as_bytes();
    if !byte_is(b, 2, b'/') || !byte_is(b, 5, b'/') || !byte_is(b, 8, b' ') || !byte_is(b, 17, b' ')
    {
        return None;
    }
    let (hour, minute, second) = hms(b, 9)?;
    let t = LocalTime {
        year: Some(2000 + i32::try_from(d2(b, 0)?).ok()?),
        month: d2(b, 3)?,
        day: d2(b, 6)?,
        hour,
        minute,
        second,
        millis: 0,
    };
    if !plausible(&t) {
        return None;
    }
    let (_, level, logger, thread, msg) = level_thread_logger(tail(line, 18)?)?;
    Some(ParsedLine::header(Layout::CliH2, level, Some(t), msg).with(logger, thread))
}

/// `dd MMM yyyy HH:mm:ss,SSS LEVEL [thread] (Class.method:N) NDC - msg` (flume.log).
fn parse_flume_file(line: &str) -> Option<ParsedLine<'_>> {
    let b = line.as_bytes();
    if !byte_is(b, 2, b' ')
        || !byte_is(b, 6, b' ')
        || !byte_is(b, 11, b' ')
        || !byte_is(b, 20, b',')
        || !byte_is(b, 24, b' ')
    {
        return None;
    }
    let (hour, minute, second) = hms(b, 12)?;
    let t = LocalTime {
        year: Some(i32::try_from(d4(b, 7)?).ok()?),
        month: month_from_name(b.get(3..6)?)?,
        day: d2(b, 0)?,
        hour,
        minute,
        second,
        millis: d3(b, 21)?,
    };
    if !plausible(&t) {
        return None;
    }
    let (level, rest) = take_level(tail(line, 25)?)?;
    let fallback = ParsedLine::header(Layout::Flume, level, Some(t), rest);
    let Some(inner) = rest.strip_prefix('[') else {
        return Some(fallback);
    };
    let ib = inner.as_bytes();
    let mut from = 0usize;
    while let Some(off) = ib.get(from..).and_then(|r| memchr::memchr(b']', r)) {
        let p = from + off;
        from = p + 1;
        let Some(after) = inner.get(p + 1..).and_then(|a| a.strip_prefix(" (")) else {
            continue;
        };
        let Some(close) = memchr::memchr2(b')', b' ', after.as_bytes()) else {
            continue;
        };
        if after.as_bytes().get(close) != Some(&b')') {
            continue;
        }
        let (Some(loc), Some(after_loc)) = (after.get(..close), after.get(close + 1..)) else {
            continue;
        };
        let msg = match after_loc.split_once(" - ") {
            Some((_, m)) => m,
            None => match after_loc.trim_end().strip_suffix(" -") {
                Some(_) => "",
                None => continue,
            },
        };
        let thread = inner.get(..p)?;
        let without_line = loc.rsplit_once(':').map_or(loc, |(c, _)| c);
        let logger = without_line
            .rsplit_once('.')
            .map_or(without_line, |(c, _)| c);
        return Some(ParsedLine::header(Layout::Flume, level, Some(t), msg).with(logger, thread));
    }
    Some(fallback)
}

/// `yyMMdd HHmmss pid LEVEL logger: msg` (loghub HDFS_2k, Hadoop 0.18 era).
fn parse_hdfs_legacy(line: &str) -> Option<ParsedLine<'_>> {
    let b = line.as_bytes();
    if !byte_is(b, 6, b' ') || !byte_is(b, 13, b' ') {
        return None;
    }
    let t = LocalTime {
        year: Some(2000 + i32::try_from(d2(b, 0)?).ok()?),
        month: d2(b, 2)?,
        day: d2(b, 4)?,
        hour: d2(b, 7)?,
        minute: d2(b, 9)?,
        second: d2(b, 11)?,
        millis: 0,
    };
    if !plausible(&t) {
        return None;
    }
    let rest = tail(line, 14)?;
    let pid_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    if pid_len == 0 {
        return None;
    }
    let (pid, after) = rest.split_at_checked(pid_len)?;
    let after = after.strip_prefix(' ')?;
    let (level, body) = take_level(after)?;
    let (logger, msg) = split_logger(body).unwrap_or(("", body));
    Some(ParsedLine::header(Layout::HdfsLegacy, level, Some(t), msg).with(logger, pid))
}

// ---------------------------------------------------------------------------------------------
// Syslog

/// `Mmm dd HH:MM:SS host prog[pid]: msg` (day may be space-padded or a single digit).
fn parse_syslog(line: &str) -> Option<ParsedLine<'_>> {
    let b = line.as_bytes();
    let month = month_from_name(b.get(0..3)?)?;
    if !byte_is(b, 3, b' ') {
        return None;
    }
    let (day, time_at) = match (b.get(4), b.get(5), b.get(6)) {
        (Some(b' '), Some(_), Some(b' ')) => (dig(b, 5)?, 7),
        (Some(_), Some(b' '), _) => (dig(b, 4)?, 6),
        (Some(_), Some(_), Some(b' ')) => (d2(b, 4)?, 7),
        _ => return None,
    };
    let (hour, minute, second) = hms(b, time_at)?;
    if !byte_is(b, time_at + 8, b' ') {
        return None;
    }
    let t = LocalTime {
        year: None,
        month,
        day,
        hour,
        minute,
        second,
        millis: 0,
    };
    if !plausible(&t) {
        return None;
    }
    let after_time = tail(line, time_at + 9)?;
    let (host, rest) = after_time.split_once(' ')?;
    if host.is_empty() {
        return None;
    }
    let rest = rest.trim_start_matches(' ');
    let (logger, thread, msg) = match split_tag(rest) {
        Some(parts) => parts,
        None => ("", "", rest),
    };
    let level = if msg.starts_with("error:") {
        Level::Error
    } else if msg.starts_with("fatal:") {
        Level::Fatal
    } else {
        Level::Info
    };
    let mut p = ParsedLine::header(Layout::Syslog, level, Some(t), msg).with(logger, thread);
    p.host = Some(host);
    Some(p)
}

/// `prog[pid]: msg` / `prog: msg` with no spaces in the tag. Returns (prog, pid, msg).
fn split_tag(s: &str) -> Option<(&str, &str, &str)> {
    let (tag, msg) = split_logger(s)?;
    match tag.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
        Some((prog, pid)) if !prog.is_empty() => Some((prog, pid, msg)),
        _ => Some((tag, "", msg)),
    }
}

// ---------------------------------------------------------------------------------------------
// Lines with no timestamp: continuations, console output

/// FsShell command names whose errors are printed as `<cmd>: <message>`.
const FS_SHELL_COMMANDS: &[&str] = &[
    "ls",
    "lsr",
    "mkdir",
    "put",
    "get",
    "cat",
    "text",
    "rm",
    "rmr",
    "rmdir",
    "mv",
    "cp",
    "copyFromLocal",
    "copyToLocal",
    "moveFromLocal",
    "moveToLocal",
    "touchz",
    "touch",
    "test",
    "stat",
    "tail",
    "head",
    "du",
    "dus",
    "df",
    "count",
    "chmod",
    "chown",
    "chgrp",
    "setrep",
    "expunge",
    "getmerge",
    "appendToFile",
    "checksum",
    "find",
    "truncate",
    "createSnapshot",
    "deleteSnapshot",
    "renameSnapshot",
    "setfacl",
    "getfacl",
    "setfattr",
    "getfattr",
    "usage",
];

/// Lowercase words that precede `: ` on a console without being a host name
/// (local program names and message labels).
const NOT_HOSTS: &[&str] = &[
    "ssh",
    "scp",
    "rsync",
    "pdsh",
    "bash",
    "sh",
    "zsh",
    "sudo",
    "su",
    "nohup",
    "env",
    "java",
    "hadoop",
    "hdfs",
    "yarn",
    "mapred",
    "spark",
    "flume",
    "flume-ng",
    "zookeeper",
    "kill",
    "error",
    "warning",
    "warn",
    "info",
    "debug",
    "fatal",
    "note",
    "at",
];

fn classify_other(line: &str) -> ParsedLine<'_> {
    if is_continuation_text(line) {
        return ParsedLine::continuation(line);
    }
    if let Some(p) = parse_jvm_uncaught(line) {
        return p;
    }
    if line.starts_with("FATAL:") {
        return ParsedLine::raw(line, Level::Fatal);
    }
    if line.starts_with("ERROR:") {
        return ParsedLine::raw(line, Level::Error);
    }
    if line.starts_with("WARNING:") || line.starts_with("WARN:") {
        return ParsedLine::raw(line, Level::Warn);
    }
    if let Some(p) = parse_pdsh(line) {
        return p;
    }
    if let Some((tok, msg)) = line.split_once(": ") {
        let cmd = tok.strip_prefix('-').unwrap_or(tok);
        if FS_SHELL_COMMANDS.contains(&cmd) {
            return ParsedLine::header(Layout::CliCommand, Level::Error, None, msg).with(cmd, "");
        }
        if is_host_token(tok) {
            let mut p = ParsedLine::header(Layout::HostPrefixed, remote_level(msg), None, msg);
            p.host = Some(tok);
            return p;
        }
    }
    ParsedLine::raw(line, Level::Unknown)
}

/// Level of a message printed by a remote (or local) shell script.
fn remote_level(msg: &str) -> Level {
    if msg.starts_with("FATAL:") {
        Level::Fatal
    } else if msg.starts_with("ERROR:") {
        Level::Error
    } else if msg.starts_with("WARNING:") || msg.starts_with("WARN:") {
        Level::Warn
    } else {
        Level::Unknown
    }
}

/// `pdsh@<local>: <host>: msg` (pdsh's own error lines).
fn parse_pdsh(line: &str) -> Option<ParsedLine<'_>> {
    let r = line.strip_prefix("pdsh@")?;
    let (local, rest) = r.split_once(": ")?;
    if local.is_empty() || local.contains(' ') {
        return None;
    }
    let (host, msg) = match rest.split_once(": ") {
        Some((h, m)) if is_host_token(h) => (Some(h), m),
        _ => (None, rest),
    };
    let mut p =
        ParsedLine::header(Layout::HostPrefixed, remote_level(msg), None, msg).with("pdsh", "");
    p.host = host;
    Some(p)
}

/// `Exception in thread "main" java.lang.OutOfMemoryError: Java heap space`.
fn parse_jvm_uncaught(line: &str) -> Option<ParsedLine<'_>> {
    let r = line.strip_prefix("Exception in thread \"")?;
    let (thread, after) = r.split_once("\" ").unwrap_or((r.trim_end_matches('"'), ""));
    let end = after
        .bytes()
        .position(|c| !is_ident_byte(c))
        .unwrap_or(after.len());
    let class = after.get(..end).unwrap_or("");
    Some(ParsedLine::header(Layout::JvmException, Level::Error, None, line).with(class, thread))
}

/// Text-only continuation markers (whitespace-led lines are handled before).
fn is_continuation_text(line: &str) -> bool {
    line.starts_with("Caused by:")
        || line.starts_with("Suppressed:")
        || line.starts_with("STARTUP_MSG:")
        || line.starts_with("SHUTDOWN_MSG:")
        || line.starts_with("/***")
        || line.starts_with("****")
        || is_more_line(line)
        || is_bare_frame(line)
        || is_exception_line(line)
}

/// `... 12 more`
fn is_more_line(line: &str) -> bool {
    let Some(r) = line.strip_prefix("... ") else {
        return false;
    };
    let n = r.bytes().take_while(u8::is_ascii_digit).count();
    n > 0 && r.get(n..).is_some_and(|m| m.starts_with(" more"))
}

/// `at org.foo.Bar.baz(Bar.java:12)` whose leading tab was stripped by a shipper.
fn is_bare_frame(line: &str) -> bool {
    let Some(r) = line.strip_prefix("at ") else {
        return false;
    };
    let end = r.bytes().position(|c| !is_ident_byte(c)).unwrap_or(r.len());
    end > 0 && r.as_bytes().get(end) == Some(&b'(') && r.get(..end).is_some_and(|m| m.contains('.'))
}

#[inline]
fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.'
}

/// A bare Java exception line: `java.net.ConnectException: ...`,
/// `org.apache.hadoop.ipc.RemoteException(org...AccessControlException): ...`,
/// `java.lang.NullPointerException`, or an undotted `GSSException: ...`.
fn is_exception_line(line: &str) -> bool {
    let b = line.as_bytes();
    let end = b.iter().position(|&c| !is_ident_byte(c)).unwrap_or(b.len());
    let Some(ident) = line.get(..end) else {
        return false;
    };
    let next = b.get(end).copied();
    let Some(&first) = ident.as_bytes().first() else {
        return false;
    };
    if !first.is_ascii_alphabetic() || ident.ends_with('.') || ident.contains("..") {
        return false;
    }
    let (last, dotted) = match ident.rsplit_once('.') {
        Some((_, l)) => (l, true),
        None => (ident, false),
    };
    if !last.as_bytes().first().is_some_and(u8::is_ascii_uppercase) {
        return false;
    }
    let suffix_len = ["Exception", "Error", "Throwable"]
        .iter()
        .find(|s| last.ends_with(*s))
        .map(|s| s.len());
    let Some(suffix_len) = suffix_len else {
        return false;
    };
    if dotted {
        first.is_ascii_lowercase() && matches!(next, None | Some(b':' | b'('))
    } else {
        last.len() > suffix_len && next == Some(b':')
    }
}

/// Does `tok` look like a host name or IPv4 address (the `<host>: ` console prefix)?
fn is_host_token(tok: &str) -> bool {
    let b = tok.as_bytes();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    if b.len() > 253 || !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return false;
    }
    let mut lower = false;
    let mut upper = false;
    let mut digit = false;
    let mut other = false;
    for &c in b {
        match c {
            b'a'..=b'z' => lower = true,
            b'A'..=b'Z' => upper = true,
            b'0'..=b'9' => digit = true,
            b'-' | b'.' => other = true,
            _ => return false,
        }
    }
    if !lower && !digit {
        return false; // ERROR, WARNING, single capitals
    }
    if !lower && !upper {
        // Only digits, dots and dashes: must be a dotted-quad IPv4 address.
        return is_ipv4(tok);
    }
    if first.is_ascii_uppercase()
        && !digit
        && !other
        && !b.iter().skip(1).any(u8::is_ascii_uppercase)
    {
        return false; // Title-case English label: `Hostname: dn06`, `Note: ...`, `Error: ...`
    }
    if let Some((_, seg)) = tok.rsplit_once('.')
        && seg.as_bytes().first().is_some_and(u8::is_ascii_uppercase)
    {
        return false; // Java class name such as `java.net.ConnectException`
    }
    !NOT_HOSTS.contains(&tok)
}

fn is_ipv4(tok: &str) -> bool {
    let mut n = 0;
    for part in tok.split('.') {
        n += 1;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
        if part.parse::<u16>().map_or(true, |v| v > 255) {
            return false;
        }
    }
    n == 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::testdata;

    fn t(y: Option<i32>, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> Option<LocalTime> {
        Some(LocalTime {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
            millis: ms,
        })
    }

    /// Asserts kind=Header and the given fields; returns the parsed time.
    fn hdr(
        line: &str,
        layout: Layout,
        level: Level,
        logger: &str,
        thread: &str,
        message: &str,
        host: Option<&str>,
    ) -> Option<LocalTime> {
        let p = parse_line(line);
        assert_eq!(p.kind, LineKind::Header, "kind of {line:?}");
        assert_eq!(p.layout, layout, "layout of {line:?}");
        assert_eq!(p.level, level, "level of {line:?}");
        assert_eq!(p.logger, logger, "logger of {line:?}");
        assert_eq!(p.thread, thread, "thread of {line:?}");
        assert_eq!(p.message, message, "message of {line:?}");
        assert_eq!(p.host, host, "host of {line:?}");
        p.time
    }

    fn cont(line: &str) {
        let p = parse_line(line);
        assert_eq!(p.kind, LineKind::Continuation, "kind of {line:?} ({p:?})");
        assert_eq!(p.message, line.strip_suffix('\r').unwrap_or(line));
        assert_eq!(p.level, Level::Unknown);
        assert_eq!(p.time, None);
    }

    #[test]
    fn log4j_daemon() {
        let time = hdr(
            "2024-05-12 10:14:12,005 INFO org.apache.hadoop.hdfs.StateChange: BLOCK* removeDeadDatanode: lost heartbeat from 192.168.10.13:9866, removeBlocksFromBlockMap true",
            Layout::Log4j,
            Level::Info,
            "org.apache.hadoop.hdfs.StateChange",
            "",
            "BLOCK* removeDeadDatanode: lost heartbeat from 192.168.10.13:9866, removeBlocksFromBlockMap true",
            None,
        );
        assert_eq!(time, t(Some(2024), 5, 12, 10, 14, 12, 5));
        // Message that is empty but for a trailing space is kept verbatim.
        hdr(
            "2024-05-12 08:01:50,101 INFO org.apache.hadoop.hdfs.server.namenode.NameNode: STARTUP_MSG: ",
            Layout::Log4j,
            Level::Info,
            "org.apache.hadoop.hdfs.server.namenode.NameNode",
            "",
            "STARTUP_MSG: ",
            None,
        );
        hdr(
            "2024-05-12 10:31:40,877 WARN org.apache.hadoop.hdfs.server.datanode.DataNode: IOException in offerService\r",
            Layout::Log4j,
            Level::Warn,
            "org.apache.hadoop.hdfs.server.datanode.DataNode",
            "",
            "IOException in offerService",
            None,
        );
        hdr(
            "2024-05-12 10:24:12,125 INFO org.apache.hadoop.yarn.util.AbstractLivelinessMonitor: Expired:worker3:45219 Timed out after 600 secs",
            Layout::Log4j,
            Level::Info,
            "org.apache.hadoop.yarn.util.AbstractLivelinessMonitor",
            "",
            "Expired:worker3:45219 Timed out after 600 secs",
            None,
        );
        // Hadoop 3 CLI (`%c{2}`) and an empty message with its trailing space trimmed.
        hdr(
            "2024-05-12 10:40:02,311 INFO ipc.Client: Retrying connect to server: master/192.168.10.10:8032. Already tried 0 time(s)",
            Layout::Log4j,
            Level::Info,
            "ipc.Client",
            "",
            "Retrying connect to server: master/192.168.10.10:8032. Already tried 0 time(s)",
            None,
        );
        hdr(
            "2025-08-04 02:17:35,889 FATAL BlockStateChange:",
            Layout::Log4j,
            Level::Fatal,
            "BlockStateChange",
            "",
            "",
            None,
        );
        for (tok, lvl) in [
            ("TRACE", Level::Trace),
            ("DEBUG", Level::Debug),
            ("INFO", Level::Info),
            ("WARN", Level::Warn),
            ("ERROR", Level::Error),
            ("FATAL", Level::Fatal),
        ] {
            let l = format!("2024-05-12 10:14:12,005 {tok} a.B: m");
            assert_eq!(parse_line(&l).level, lvl);
        }
    }

    #[test]
    fn container_syslog() {
        let time = hdr(
            "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster for application appattempt_1445144423722_0020_000001\r",
            Layout::Container,
            Level::Info,
            "org.apache.hadoop.mapreduce.v2.app.MRAppMaster",
            "main",
            "Created MRAppMaster for application appattempt_1445144423722_0020_000001",
            None,
        );
        assert_eq!(time, t(Some(2015), 10, 18, 18, 1, 47, 978));
        hdr(
            "2015-10-18 18:04:11,034 ERROR [RMCommunicator Allocator] org.apache.hadoop.mapreduce.v2.app.rm.RMContainerAllocator: Container complete event for unknown container id container_1445144423722_0020_01_000012",
            Layout::Container,
            Level::Error,
            "org.apache.hadoop.mapreduce.v2.app.rm.RMContainerAllocator",
            "RMCommunicator Allocator",
            "Container complete event for unknown container id container_1445144423722_0020_01_000012",
            None,
        );
        hdr(
            "2015-10-18 18:05:27,570 WARN [LeaseRenewer:msrabi@msra-sa-41:9000] org.apache.hadoop.ipc.Client: Address change detected. Old: msra-sa-41/10.190.173.170:9000 New: msra-sa-41:9000",
            Layout::Container,
            Level::Warn,
            "org.apache.hadoop.ipc.Client",
            "LeaseRenewer:msrabi@msra-sa-41:9000",
            "Address change detected. Old: msra-sa-41/10.190.173.170:9000 New: msra-sa-41:9000",
            None,
        );
        // Thread with `] ` inside it; HBase pads the level (`%-5p`).
        hdr(
            "2025-05-19 23:41:07,561 INFO  [regionserver/dn03:16020] regionserver.HRegionServer: ***** STOPPING region server 'dn03.cluster.local,16020,1747600812345' *****",
            Layout::Container,
            Level::Info,
            "regionserver.HRegionServer",
            "regionserver/dn03:16020",
            "***** STOPPING region server 'dn03.cluster.local,16020,1747600812345' *****",
            None,
        );
        hdr(
            "2025-01-01 00:00:00,000 INFO [IPC Server handler 3 on 8020] [x] org.a.B: m",
            Layout::Container,
            Level::Info,
            "org.a.B",
            "IPC Server handler 3 on 8020] [x",
            "m",
            None,
        );
        hdr(
            "2025-02-05 17:44:12,901 FATAL [main] org.apache.hadoop.mapred.YarnChild: Error running child : java.lang.OutOfMemoryError: Java heap space",
            Layout::Container,
            Level::Fatal,
            "org.apache.hadoop.mapred.YarnChild",
            "main",
            "Error running child : java.lang.OutOfMemoryError: Java heap space",
            None,
        );
    }

    #[test]
    fn cli_h2_and_spark() {
        let time = hdr(
            "18/02/24 10:03:52 INFO ipc.Client: Retrying connect to server",
            Layout::CliH2,
            Level::Info,
            "ipc.Client",
            "",
            "Retrying connect to server",
            None,
        );
        assert_eq!(time, t(Some(2018), 2, 24, 10, 3, 52, 0));
        hdr(
            "17/06/09 20:10:40 INFO executor.CoarseGrainedExecutorBackend: Registered signal handlers for [TERM, HUP, INT]\r",
            Layout::CliH2,
            Level::Info,
            "executor.CoarseGrainedExecutorBackend",
            "",
            "Registered signal handlers for [TERM, HUP, INT]",
            None,
        );
        hdr(
            "25/04/09 11:20:33 ERROR YarnScheduler: Lost executor 7 on dn06: Container killed by YARN for exceeding memory limits.",
            Layout::CliH2,
            Level::Error,
            "YarnScheduler",
            "",
            "Lost executor 7 on dn06: Container killed by YARN for exceeding memory limits.",
            None,
        );
    }

    #[test]
    fn flume_file() {
        let time = hdr(
            "12 May 2024 10:15:30,402 INFO  [conf-file-poller-0] (org.apache.flume.sink.http.HttpSink.configure:122)  - Read endpoint URL from configuration : http://master:8080/api/log/auto-upload?host=worker1&service=datanode",
            Layout::Flume,
            Level::Info,
            "org.apache.flume.sink.http.HttpSink",
            "conf-file-poller-0",
            "Read endpoint URL from configuration : http://master:8080/api/log/auto-upload?host=worker1&service=datanode",
            None,
        );
        assert_eq!(time, t(Some(2024), 5, 12, 10, 15, 30, 402));
        hdr(
            "12 May 2024 10:15:33,120 ERROR [SinkRunner-PollingRunner-DefaultSinkProcessor] (org.apache.flume.sink.http.HttpSink.process:277)  - Error opening connection, or request timed out",
            Layout::Flume,
            Level::Error,
            "org.apache.flume.sink.http.HttpSink",
            "SinkRunner-PollingRunner-DefaultSinkProcessor",
            "Error opening connection, or request timed out",
            None,
        );
        hdr(
            "02 Apr 2025 19:22:10,845 ERROR [New I/O worker #3] (org.apache.flume.source.AvroSource.appendBatch:391)  - Avro source r1: Unable to process event batch. Exception follows.",
            Layout::Flume,
            Level::Error,
            "org.apache.flume.source.AvroSource",
            "New I/O worker #3",
            "Avro source r1: Unable to process event batch. Exception follows.",
            None,
        );
        hdr(
            "12 May 2024 10:18:14,250 WARN  [pool-5-thread-1] (org.apache.flume.source.SpoolDirectorySource$SpoolDirectoryRunnable.run:275)  - The channel is full",
            Layout::Flume,
            Level::Warn,
            "org.apache.flume.source.SpoolDirectorySource$SpoolDirectoryRunnable",
            "pool-5-thread-1",
            "The channel is full",
            None,
        );
        // Non-empty NDC, and an empty message with trailing space trimmed.
        hdr(
            "04 Mar 2026 10:22:31,512 DEBUG [t] (a.B.c:1) ndc - hello - world",
            Layout::Flume,
            Level::Debug,
            "a.B",
            "t",
            "hello - world",
            None,
        );
        hdr(
            "04 Mar 2026 10:22:31,512 DEBUG [t] (a.B.c:1)  -",
            Layout::Flume,
            Level::Debug,
            "a.B",
            "t",
            "",
            None,
        );
    }

    #[test]
    fn flume_console() {
        let time = hdr(
            "2026-03-04 10:22:31,512 (pool-5-thread-1) [ERROR - org.apache.flume.source.ExecSource$ExecRunnable.run(ExecSource.java:356)] Failed while running command: tail -F /var/log/x",
            Layout::FlumeConsole,
            Level::Error,
            "org.apache.flume.source.ExecSource$ExecRunnable",
            "pool-5-thread-1",
            "Failed while running command: tail -F /var/log/x",
            None,
        );
        assert_eq!(time, t(Some(2026), 3, 4, 10, 22, 31, 512));
        hdr(
            "2025-03-20 07:45:12,301 (lifecycleSupervisor-1-1) [INFO - org.apache.flume.sink.AbstractRpcSink.start(AbstractRpcSink.java:287)] Starting RpcSink k1 { host: flume-collector-1, port: 4545 }...",
            Layout::FlumeConsole,
            Level::Info,
            "org.apache.flume.sink.AbstractRpcSink",
            "lifecycleSupervisor-1-1",
            "Starting RpcSink k1 { host: flume-collector-1, port: 4545 }...",
            None,
        );
    }

    #[test]
    fn zookeeper() {
        let time = hdr(
            "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200\r",
            Layout::Zookeeper,
            Level::Info,
            "FastLeaderElection",
            "QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181",
            "Notification time out: 3200",
            None,
        );
        assert_eq!(time, t(Some(2015), 7, 29, 17, 41, 44, 747));
        hdr(
            "2015-07-29 19:04:12,394 - INFO  [/10.10.34.11:3888:QuorumCnxManager$Listener@493] - Received connection request /10.10.34.11:45307",
            Layout::Zookeeper,
            Level::Info,
            "QuorumCnxManager$Listener",
            "/10.10.34.11:3888",
            "Received connection request /10.10.34.11:45307",
            None,
        );
        hdr(
            "2015-07-29 23:44:28,903 - ERROR [CommitProcessor:1:NIOServerCnxn@180] - Unexpected Exception: \r",
            Layout::Zookeeper,
            Level::Error,
            "NIOServerCnxn",
            "CommitProcessor:1",
            "Unexpected Exception: ",
            None,
        );
        // ZooKeeper 3.5+ puts `[myid:N] - ` before the level.
        hdr(
            "2025-03-01 10:02:11,123 [myid:1] - WARN  [QuorumConnectionThread-[myid=1]-2:QuorumCnxManager@400] - Cannot open channel to 2 at election address /10.20.0.42:3888",
            Layout::Zookeeper,
            Level::Warn,
            "QuorumCnxManager",
            "QuorumConnectionThread-[myid=1]-2",
            "Cannot open channel to 2 at election address /10.20.0.42:3888",
            None,
        );
        hdr(
            "2025-03-14 09:41:10,552 [myid:2] - WARN  [NIOServerCxn.Factory:0.0.0.0/0.0.0.0:2181:NIOServerCnxn@376] - caught end of stream exception",
            Layout::Zookeeper,
            Level::Warn,
            "NIOServerCnxn",
            "NIOServerCxn.Factory:0.0.0.0/0.0.0.0:2181",
            "caught end of stream exception",
            None,
        );
    }

    #[test]
    fn hdfs_legacy() {
        let time = hdr(
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating\r",
            Layout::HdfsLegacy,
            Level::Info,
            "dfs.DataNode$PacketResponder",
            "148",
            "PacketResponder 1 for block blk_38865049064139660 terminating",
            None,
        );
        assert_eq!(time, t(Some(2008), 11, 9, 20, 36, 15, 0));
        hdr(
            "081109 214043 2561 WARN dfs.DataNode$DataXceiver: 10.251.30.85:50010:Got exception while serving blk_-2918118818249673980 to /10.251.90.64:",
            Layout::HdfsLegacy,
            Level::Warn,
            "dfs.DataNode$DataXceiver",
            "2561",
            "10.251.30.85:50010:Got exception while serving blk_-2918118818249673980 to /10.251.90.64:",
            None,
        );
    }

    #[test]
    fn syslog() {
        let time = hdr(
            "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186\r",
            Layout::Syslog,
            Level::Info,
            "sshd",
            "24200",
            "Invalid user webmaster from 173.234.31.186",
            Some("LabSZ"),
        );
        assert_eq!(time, t(None, 12, 10, 6, 55, 46, 0));
        hdr(
            "Dec 10 07:51:15 LabSZ sshd[24324]: error: Received disconnect from 195.154.37.122: 3: com.jcraft.jsch.JSchException: Auth fail [preauth]",
            Layout::Syslog,
            Level::Error,
            "sshd",
            "24324",
            "error: Received disconnect from 195.154.37.122: 3: com.jcraft.jsch.JSchException: Auth fail [preauth]",
            Some("LabSZ"),
        );
        hdr(
            "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4 ",
            Layout::Syslog,
            Level::Info,
            "sshd(pam_unix)",
            "19939",
            "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4 ",
            Some("combo"),
        );
        let time = hdr(
            "Mar  4 10:22:31 slave3 sshd[2417]: fatal: Access denied for user hadoop by PAM account configuration",
            Layout::Syslog,
            Level::Fatal,
            "sshd",
            "2417",
            "fatal: Access denied for user hadoop by PAM account configuration",
            Some("slave3"),
        );
        assert_eq!(time, t(None, 3, 4, 10, 22, 31, 0));
        hdr(
            "Jul 27 14:41:57 combo kernel:  BIOS-e820: 0000000000000000 - 00000000000a0000 (usable)",
            Layout::Syslog,
            Level::Info,
            "kernel",
            "",
            " BIOS-e820: 0000000000000000 - 00000000000a0000 (usable)",
            Some("combo"),
        );
        hdr(
            "Jun 19 04:09:11 combo syslogd 1.4.1: restart.",
            Layout::Syslog,
            Level::Info,
            "",
            "",
            "syslogd 1.4.1: restart.",
            Some("combo"),
        );
        hdr(
            "Jul  7 08:06:15 combo  -- root[2421]: ROOT LOGIN ON tty2",
            Layout::Syslog,
            Level::Info,
            "",
            "",
            "-- root[2421]: ROOT LOGIN ON tty2",
            Some("combo"),
        );
        let time = hdr(
            "Mar 4 10:22:31 slave3 sshd[2417]: x",
            Layout::Syslog,
            Level::Info,
            "sshd",
            "2417",
            "x",
            Some("slave3"),
        );
        assert_eq!(time, t(None, 3, 4, 10, 22, 31, 0));
    }

    #[test]
    fn jvm_uncaught() {
        hdr(
            "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space",
            Layout::JvmException,
            Level::Error,
            "java.lang.OutOfMemoryError",
            "main",
            "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space",
            None,
        );
        hdr(
            "Exception in thread \"IPC Client (1) connection\" org.apache.hadoop.hdfs.server.namenode.SafeModeException: Cannot create directory",
            Layout::JvmException,
            Level::Error,
            "org.apache.hadoop.hdfs.server.namenode.SafeModeException",
            "IPC Client (1) connection",
            "Exception in thread \"IPC Client (1) connection\" org.apache.hadoop.hdfs.server.namenode.SafeModeException: Cannot create directory",
            None,
        );
    }

    #[test]
    fn fs_shell_errors() {
        hdr(
            "ls: Call From worker1/192.168.10.11 to master:9000 failed on connection exception: java.net.ConnectException: Connection refused",
            Layout::CliCommand,
            Level::Error,
            "ls",
            "",
            "Call From worker1/192.168.10.11 to master:9000 failed on connection exception: java.net.ConnectException: Connection refused",
            None,
        );
        hdr(
            "mkdir: Cannot create directory /flume/incoming. Name node is in safe mode.",
            Layout::CliCommand,
            Level::Error,
            "mkdir",
            "",
            "Cannot create directory /flume/incoming. Name node is in safe mode.",
            None,
        );
        hdr(
            "-ls: java.net.UnknownHostException: prodcluster",
            Layout::CliCommand,
            Level::Error,
            "ls",
            "",
            "java.net.UnknownHostException: prodcluster",
            None,
        );
        hdr(
            "copyFromLocal: `/x': File exists",
            Layout::CliCommand,
            Level::Error,
            "copyFromLocal",
            "",
            "`/x': File exists",
            None,
        );
    }

    #[test]
    fn host_prefixed_console() {
        hdr(
            "worker3: Permission denied (publickey,gssapi-keyex,gssapi-with-mic,password).",
            Layout::HostPrefixed,
            Level::Unknown,
            "",
            "",
            "Permission denied (publickey,gssapi-keyex,gssapi-with-mic,password).",
            Some("worker3"),
        );
        hdr(
            "dn03: hadoop@dn03: Permission denied (publickey,gssapi-keyex,gssapi-with-mic,password).",
            Layout::HostPrefixed,
            Level::Unknown,
            "",
            "",
            "hadoop@dn03: Permission denied (publickey,gssapi-keyex,gssapi-with-mic,password).",
            Some("dn03"),
        );
        hdr(
            "0.0.0.0: Host key verification failed.",
            Layout::HostPrefixed,
            Level::Unknown,
            "",
            "",
            "Host key verification failed.",
            Some("0.0.0.0"),
        );
        hdr(
            "worker2: ssh: connect to host worker2 port 22: No route to host",
            Layout::HostPrefixed,
            Level::Unknown,
            "",
            "",
            "ssh: connect to host worker2 port 22: No route to host",
            Some("worker2"),
        );
        hdr(
            "dn01.cluster.local: ERROR: Cannot set priority of datanode process 4242",
            Layout::HostPrefixed,
            Level::Error,
            "",
            "",
            "ERROR: Cannot set priority of datanode process 4242",
            Some("dn01.cluster.local"),
        );
        hdr(
            "Worker-7: WARNING: HADOOP_SECURE_DN_USER has been replaced by HDFS_DATANODE_SECURE_USER.",
            Layout::HostPrefixed,
            Level::Warn,
            "",
            "",
            "WARNING: HADOOP_SECURE_DN_USER has been replaced by HDFS_DATANODE_SECURE_USER.",
            Some("Worker-7"),
        );
        hdr(
            "pdsh@master: worker1: ssh exited with exit code 255",
            Layout::HostPrefixed,
            Level::Unknown,
            "pdsh",
            "",
            "ssh exited with exit code 255",
            Some("worker1"),
        );
        hdr(
            "pdsh@nn1: nn1: rcmd: socket: Permission denied",
            Layout::HostPrefixed,
            Level::Unknown,
            "pdsh",
            "",
            "rcmd: socket: Permission denied",
            Some("nn1"),
        );
        hdr(
            "pdsh@master: gethostbyname(\"nope\") failed",
            Layout::HostPrefixed,
            Level::Unknown,
            "pdsh",
            "",
            "gethostbyname(\"nope\") failed",
            None,
        );
    }

    #[test]
    fn raw_console_lines() {
        hdr(
            "FATAL: JAVA_HOME is not set",
            Layout::Raw,
            Level::Fatal,
            "",
            "",
            "FATAL: JAVA_HOME is not set",
            None,
        );
        hdr(
            "ERROR: Attempting to operate on hdfs namenode as root",
            Layout::Raw,
            Level::Error,
            "",
            "",
            "ERROR: Attempting to operate on hdfs namenode as root",
            None,
        );
        hdr(
            "WARNING: 'slaves' file has been deprecated. Please use 'workers' file instead.",
            Layout::Raw,
            Level::Warn,
            "",
            "",
            "WARNING: 'slaves' file has been deprecated. Please use 'workers' file instead.",
            None,
        );
        // Not host prefixes: labels, program names, class names, host:port, bad IPv4.
        for line in [
            "Starting namenodes on [master]",
            "Hostname: dn06",
            "Name: 10.20.1.106:9866 (dn06)",
            "Note: System times on machines may be out of sync.",
            "Error: Could not find or load main class org.apache.hadoop.mapreduce.v2.app.MRAppMaster",
            "Configured Capacity: 0 (0 B)",
            "10.20.0.31:8485: Journal Storage Directory root= /data/hdfs/journal/prodcluster; location= null not formatted",
            "ssh: connect to host worker2 port 22: Connection refused",
            "hadoop: command not found",
            "300.1.1.1: x",
            "12345: x",
            "DEBUG: x",
            "org.apache.Foo: x",
            "Total Nodes:8",
            "[2025-03-14 16:18:02.415]Container killed on request. Exit code is 143",
            "...",
            "2024-13-12 10:14:12,005 INFO a.B: month 13",
            "2024-05-12 25:14:12,005 INFO a.B: hour 25",
            "2024-05-12 10:14:12,005 NOTICE a.B: unknown level",
            "2024-05-12 10:14:12 INFO a.B: no millis",
            "18/13/24 10:03:52 INFO ipc.Client: month 13",
            "12 Foo 2024 10:15:30,402 INFO  [t] (a.B.c:1)  - bad month",
            "Dec 10 06:55:46",
            "Foo 10 06:55:46 host prog: bad month",
        ] {
            let p = parse_line(line);
            assert_eq!(p.layout, Layout::Raw, "{line:?} -> {p:?}");
            assert_eq!(p.kind, LineKind::Header, "{line:?}");
            assert_eq!(p.message, line);
            assert_eq!(p.host, None);
        }
    }

    #[test]
    fn continuations() {
        for line in [
            "",
            "\r",
            "   ",
            "\tat java.net.PlainSocketImpl.socketConnect(Native Method)",
            "\t... 12 more",
            "... 12 more",
            "\t|- 18822 18820 18822 18822 (bash) 0 0 115851264 352 /bin/bash -c java",
            "\t\tBytes Read=536870912",
            "  at foo",
            "Caused by: java.net.NoRouteToHostException: No route to host",
            "Caused by: java.util.concurrent.TimeoutException",
            "Suppressed: java.io.IOException: x",
            "java.net.ConnectException: Connection refused (Connection refused)",
            "java.net.NoRouteToHostException: No Route to Host from  worker1/192.168.10.11 to master:9000 failed",
            "org.apache.hadoop.ipc.RemoteException(org.apache.hadoop.security.AccessControlException): Permission denied: user=bob",
            "java.lang.NullPointerException",
            "java.lang.NullPointerException\r",
            "java.lang.Error",
            "org.apache.hadoop.mapreduce.task.reduce.Shuffle$ShuffleError: error in shuffle in fetcher#4",
            "javax.security.sasl.SaslException: GSS initiate failed",
            "EndOfStreamException: Unable to read additional data from client sessionid 0x2953a1f0c2e0011",
            "GSSException: No valid credentials provided",
            "at org.apache.hadoop.ipc.Client.call(Client.java:1554)",
            "/************************************************************",
            "************************************************************/",
            "STARTUP_MSG: Starting NameNode",
            "STARTUP_MSG:   host = master/192.168.10.10",
            "SHUTDOWN_MSG: Shutting down NameNode at master/192.168.10.10",
        ] {
            cont(line);
        }
        // Exception look-alikes that are not continuation lines.
        for line in [
            "Error: x",
            "java.lang.NullPointerExceptionally happened",
            "Exception: x",
            "java.net.connectException: x",
            "ConnectException",
        ] {
            assert_eq!(parse_line(line).kind, LineKind::Header, "{line:?}");
        }
    }

    #[test]
    fn epoch_conversion() {
        let ms = |y, mo, d, h, mi, s, mls, def| {
            t(y, mo, d, h, mi, s, mls).and_then(|x| x.to_epoch_ms(def))
        };
        assert_eq!(
            ms(Some(2024), 5, 12, 10, 14, 12, 5, 0),
            Some(1_715_508_852_005)
        );
        assert_eq!(
            ms(Some(2015), 10, 18, 18, 1, 47, 978, 0),
            Some(1_445_191_307_978)
        );
        assert_eq!(
            ms(None, 11, 9, 20, 36, 15, 0, 2008),
            Some(1_226_262_975_000)
        );
        assert_eq!(ms(Some(1970), 1, 1, 0, 0, 0, 0, 0), Some(0));
        assert_eq!(ms(Some(1969), 12, 31, 23, 59, 59, 0, 0), Some(-1000));
        assert_eq!(ms(Some(2000), 3, 1, 0, 0, 0, 0, 0), Some(951_868_800_000));
        assert_eq!(
            ms(Some(2024), 2, 29, 0, 0, 0, 0, 0),
            Some(1_709_164_800_000)
        );
        assert_eq!(ms(Some(2023), 2, 29, 0, 0, 0, 0, 0), None);
        assert_eq!(ms(Some(1900), 2, 29, 0, 0, 0, 0, 0), None);
        assert_eq!(ms(Some(2000), 2, 29, 0, 0, 0, 0, 0), Some(951_782_400_000));
        assert_eq!(ms(Some(2024), 4, 31, 0, 0, 0, 0, 0), None);
        assert_eq!(ms(Some(2024), 13, 1, 0, 0, 0, 0, 0), None);
        assert_eq!(ms(Some(2024), 0, 1, 0, 0, 0, 0, 0), None);
        assert_eq!(ms(Some(2024), 1, 0, 0, 0, 0, 0, 0), None);
        assert_eq!(ms(Some(2024), 1, 1, 24, 0, 0, 0, 0), None);
        assert_eq!(ms(Some(2024), 1, 1, 0, 60, 0, 0, 0), None);
        assert_eq!(ms(Some(2024), 1, 1, 0, 0, 0, 1000, 0), None);
        // Extreme years overflow i64 milliseconds: `None`, not a panic.
        assert_eq!(ms(Some(i32::MAX), 12, 31, 23, 59, 59, 999, 0), None);
        assert_eq!(ms(Some(i32::MIN), 1, 1, 0, 0, 0, 0, 0), None);
        assert!(ms(Some(9999), 12, 31, 23, 59, 59, 999, 0).is_some());
        // Round trip of the civil helpers over four centuries of days.
        for days in (-200_000i64..200_000).step_by(7) {
            let y = year_from_days(days);
            let start = days_from_civil(y, 1, 1);
            let next = days_from_civil(y + 1, 1, 1);
            assert!(start <= days && days < next, "{days} -> {y}");
        }
    }

    /// Lines from every sample we have, plus hostile inputs: nothing may panic, and every
    /// header's message must be a suffix of the line (the parser only slices).
    #[test]
    fn never_panics() {
        let mut corpus: Vec<String> = Vec::new();
        for name in testdata::LOGHUB {
            if let Some(lines) = testdata::lines(&format!("data/loghub/{name}/{name}_2k.log")) {
                corpus.extend(lines);
            }
        }
        for (_, lines) in testdata::reference_files() {
            corpus.extend(lines);
        }
        for (_, lines) in testdata::dev_cases().unwrap_or_default() {
            corpus.extend(lines);
        }
        let seeds = [
            "2024-05-12 10:14:12,005 INFO é: x",
            "2024-05-12 10:14:12,005 INFO [é] é: x",
            "2024-05-12 10:14:12,005 - INFO  [é:é@1] - é",
            "2024-05-12 10:14:12,005 [myid:é] - INFO  [é] - é",
            "2024-05-12 10:14:12,005 (é) [ERROR - é.é(é)] é",
            "12 May 2024 10:15:30,402 INFO  [é] (é.é:é)  - é",
            "18/02/24 10:03:52 INFO é: é",
            "081109 203615 148 INFO é: é",
            "Dec 10 06:55:46 é é[é]: é",
            "Mar  4 10:22:31 é é: é",
            "Exception in thread \"é",
            "pdsh@é: é: é",
            "é: é",
            "ls: é",
            "java.lang.éException: x",
            "... é more",
        ];
        let odd = [
            "",
            " ",
            "     ",
            "\r",
            "\r\r",
            "[",
            "]",
            "] ",
            "(",
            ":",
            ": ",
            "-",
            "- ",
            "é",
            "日本語のログ",
            "2024-05-12 10:1",
            "2024-05-12 10:14:12,005",
            "2024-05-12 10:14:12,005 ",
            "2024-05-12 10:14:12,005 INFO",
            "2024-05-12 10:14:12,005 INFO ",
            "2024-05-12 10:14:12,005 INFO [",
            "2024-05-12 10:14:12,005 INFO [x] ",
            "2024-05-12 10:14:12,005 - ",
            "2024-05-12 10:14:12,005 - INFO  [",
            "2024-05-12 10:14:12,005 [myid:",
            "2024-05-12 10:14:12,005 (",
            "2024-05-12 10:14:12,005 (x) [",
            "2024-05-12 10:14:12,005 (x) [INFO - ",
            "12 May 2024",
            "12 May 2024 10:15:30,402 INFO  [",
            "12 May 2024 10:15:30,402 INFO  [x] (",
            "12 May 2024 10:15:30,402 INFO  [x] (a.b:1)",
            "18/02/24",
            "081109 203615 ",
            "081109 203615 1 ",
            "Dec 10 06:55:46 ",
            "Dec 10 06:55:46 h ",
            "Dec ",
            "Exception in thread \"",
            "pdsh@",
            "pdsh@x: ",
            "at ",
            "at (",
            "... ",
            "0.0.0.0: ",
            "\u{0}\u{1}\u{7f}",
            "\u{feff}2024-05-12 10:14:12,005 INFO a: b",
        ];
        for s in corpus.iter().map(String::as_str).chain(seeds).chain(odd) {
            check_no_panic(s);
            // Every prefix, cut at each char boundary (truncated headers).
            for (i, _) in s.char_indices() {
                check_no_panic(s.get(..i).unwrap_or(""));
            }
        }
        // A multi-byte char inserted at every char boundary of the seed headers.
        for s in seeds.iter().chain(odd.iter()) {
            for (i, _) in s.char_indices().chain(std::iter::once((s.len(), ' '))) {
                for ins in ["é", "日", "\u{10348}", "\u{0}"] {
                    let (a, b) = s.split_at(i);
                    check_no_panic(&format!("{a}{ins}{b}"));
                    check_no_panic(&format!("{a}{ins}"));
                }
            }
        }
        // Pseudo-random strings over the separator alphabet.
        let alphabet: Vec<char> = "0123456789 -:,./[]()@é\t\rINFOWARNabc_$\""
            .chars()
            .collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut s = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 60) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let idx = (state % alphabet.len() as u64) as usize;
                s.push(alphabet.get(idx).copied().unwrap_or(' '));
            }
            check_no_panic(&s);
        }
    }

    fn check_no_panic(s: &str) {
        let p = parse_line(s);
        let base = s.strip_suffix('\r').unwrap_or(s);
        assert!(
            base.ends_with(p.message),
            "message of {s:?} is not a suffix: {p:?}"
        );
        if p.kind == LineKind::Continuation {
            assert_eq!(p.message, base);
        }
        if let Some(t) = p.time {
            let _ = t.to_epoch_ms(2024);
        }
    }

    /// Layout counts of each loghub sample; each file must be (almost) entirely its layout.
    #[test]
    fn loghub_layout_counts() {
        let expect = [
            ("Hadoop", Layout::Container),
            ("HDFS", Layout::HdfsLegacy),
            ("Spark", Layout::CliH2),
            ("Zookeeper", Layout::Zookeeper),
            ("OpenSSH", Layout::Syslog),
            ("Linux", Layout::Syslog),
        ];
        for (name, want) in expect {
            let Some(lines) = testdata::lines(&format!("data/loghub/{name}/{name}_2k.log")) else {
                eprintln!("loghub {name}: sample data not found, skipped");
                continue;
            };
            let mut counts: Vec<(String, usize)> = Vec::new();
            let mut other = Vec::new();
            for l in &lines {
                let p = parse_line(l);
                let key = match p.kind {
                    LineKind::Continuation => "continuation".to_owned(),
                    LineKind::Header => p.layout.as_str().to_owned(),
                };
                match counts.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((key, 1)),
                }
                if p.kind == LineKind::Header && p.layout != want {
                    other.push(l.clone());
                }
                if p.kind == LineKind::Header && p.layout == want {
                    assert!(p.time.is_some(), "{l}");
                    if want != Layout::Syslog {
                        assert!(!p.logger.is_empty(), "{l}");
                    }
                }
            }
            eprintln!("loghub {name}: {} lines {counts:?}", lines.len());
            for l in &other {
                eprintln!("  not {}: {l}", want.as_str());
            }
            assert_eq!(lines.len(), 2000, "{name}");
            assert!(
                other.is_empty(),
                "{name}: {} lines of another layout",
                other.len()
            );
        }
    }

    /// `cargo test --release -- --ignored --nocapture bench_parse_line`
    #[test]
    #[ignore]
    fn bench_parse_line() {
        let mut lines = Vec::new();
        for name in testdata::LOGHUB {
            if let Some(l) = testdata::lines(&format!("data/loghub/{name}/{name}_2k.log")) {
                lines.push((name, l));
            }
        }
        for (name, l) in &lines {
            let reps = 1_000_000 / l.len().max(1);
            let total_bytes: usize = l.iter().map(String::len).sum::<usize>() * reps;
            let start = std::time::Instant::now();
            let mut acc = 0usize;
            for _ in 0..reps {
                for line in l {
                    let p = parse_line(std::hint::black_box(line));
                    acc = acc.wrapping_add(p.message.len() + p.logger.len());
                }
            }
            let secs = start.elapsed().as_secs_f64();
            let n = (reps * l.len()) as f64;
            eprintln!(
                "{name:>10}: {:.0} lines in {secs:.3}s = {:.2} M lines/s, {:.0} MB/s (acc {acc})",
                n,
                n / secs / 1e6,
                total_bytes as f64 / secs / 1e6
            );
        }
    }
}
