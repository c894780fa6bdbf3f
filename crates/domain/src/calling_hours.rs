//! Calling hours (R7.2): when an outbound call may start, and if not now, when next.
//!
//! A call may START at an instant `t` when, in Europe/Berlin wall-clock time:
//! - the day is Monday–Friday and the time lies in `[08:00, 20:00)`, or the day is a
//!   Saturday and the time lies in `[09:00, 18:00)`: the start is inclusive, the end
//!   exclusive, at the full resolution of the instant (19:59:59.999 may start a call,
//!   20:00:00.000 may not);
//! - the day is no Sunday and no public holiday, federal or of the configured
//!   Bundesland (see [`holiday`]);
//! - when the person gave a preferred window ([`CallWindow`]), the day is one of its days
//!   and the time lies in its `[from, to)`: the allowed slot is the intersection.
//!
//! Daylight saving time: the switches happen at 02:00/03:00 local time, outside every
//! slot, so every slot boundary exists exactly once; local times are turned into instants
//! with the offset in force at that instant ([`crate::retention::berlin_offset`]).
//!
//! Holidays are the statutory ones that hold in the whole of a Bundesland. Holidays that
//! hold only in some municipalities are left out (Fronleichnam in parts of Saxony and
//! Thuringia, the Augsburger Friedensfest), except Mariä Himmelfahrt in Bavaria (a holiday
//! in the majority of its municipalities): it is treated as statewide, so no call is placed
//! anywhere in Bavaria that day. Easter Sunday and Whit Sunday (Brandenburg) are Sundays.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};

use crate::retention::berlin_offset;

/// A German state, by its two-letter code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bundesland {
    BW,
    BY,
    BE,
    BB,
    HB,
    HH,
    HE,
    MV,
    NI,
    NW,
    RP,
    SL,
    SN,
    ST,
    SH,
    TH,
}

impl Bundesland {
    pub const ALL: [Bundesland; 16] = [
        Self::BW,
        Self::BY,
        Self::BE,
        Self::BB,
        Self::HB,
        Self::HH,
        Self::HE,
        Self::MV,
        Self::NI,
        Self::NW,
        Self::RP,
        Self::SL,
        Self::SN,
        Self::ST,
        Self::SH,
        Self::TH,
    ];

    /// The state by its code (`NW`, case-insensitive); `None` for anything else.
    pub fn parse(code: &str) -> Option<Self> {
        let code = code.trim().to_ascii_uppercase();
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::BW => "BW",
            Self::BY => "BY",
            Self::BE => "BE",
            Self::BB => "BB",
            Self::HB => "HB",
            Self::HH => "HH",
            Self::HE => "HE",
            Self::MV => "MV",
            Self::NI => "NI",
            Self::NW => "NW",
            Self::RP => "RP",
            Self::SL => "SL",
            Self::SN => "SN",
            Self::ST => "ST",
            Self::SH => "SH",
            Self::TH => "TH",
        }
    }
}

/// Easter Sunday of `year` by the Gregorian computus (the anonymous algorithm of 1876).
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// Buß- und Bettag: the Wednesday before 23 November (16–22 November).
fn buss_und_bettag(year: i32) -> Option<NaiveDate> {
    let nov22 = NaiveDate::from_ymd_opt(year, 11, 22)?;
    let back = (nov22.weekday().num_days_from_monday() + 7 - 2) % 7;
    nov22.checked_sub_days(Days::new(u64::from(back)))
}

/// The public holiday on `date` in `state`, by its German name; `None` on a working day.
pub fn holiday(date: NaiveDate, state: Bundesland) -> Option<&'static str> {
    use Bundesland::*;
    let (m, d) = (date.month(), date.day());
    let fixed = match (m, d) {
        (1, 1) => Some("Neujahr"),
        (5, 1) => Some("Tag der Arbeit"),
        (10, 3) => Some("Tag der Deutschen Einheit"),
        (12, 25) => Some("1. Weihnachtstag"),
        (12, 26) => Some("2. Weihnachtstag"),
        (1, 6) if matches!(state, BW | BY | ST) => Some("Heilige Drei Könige"),
        (3, 8) if matches!(state, BE | MV) => Some("Internationaler Frauentag"),
        (8, 15) if matches!(state, SL | BY) => Some("Mariä Himmelfahrt"),
        (9, 20) if matches!(state, TH) => Some("Weltkindertag"),
        (10, 31) if matches!(state, BB | HB | HH | MV | NI | SN | ST | SH | TH) => {
            Some("Reformationstag")
        }
        (11, 1) if matches!(state, BW | BY | NW | RP | SL) => Some("Allerheiligen"),
        _ => None,
    };
    if fixed.is_some() {
        return fixed;
    }
    if state == SN && buss_und_bettag(date.year()) == Some(date) {
        return Some("Buß- und Bettag");
    }
    let easter = easter_sunday(date.year())?;
    let offset = date.signed_duration_since(easter).num_days();
    match offset {
        -2 => Some("Karfreitag"),
        1 => Some("Ostermontag"),
        39 => Some("Christi Himmelfahrt"),
        50 => Some("Pfingstmontag"),
        60 if matches!(state, BW | BY | HE | NW | RP | SL) => Some("Fronleichnam"),
        _ => None,
    }
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN)
}

/// The legal calling hours of a weekday, `[start, end)`, local time; `None` on Sunday.
pub fn legal_hours(day: Weekday) -> Option<(NaiveTime, NaiveTime)> {
    match day {
        Weekday::Sun => None,
        Weekday::Sat => Some((hm(9, 0), hm(18, 0))),
        _ => Some((hm(8, 0), hm(20, 0))),
    }
}

/// A person's preferred call window from the sign-up form: `[from, to)` local time on
/// the given weekdays. Not identifying; stored as a plain attribute ([`CallWindow::stored`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallWindow {
    from: NaiveTime,
    to: NaiveTime,
    /// Bit `n`: weekday with `num_days_from_monday() == n`.
    days: u8,
}

/// Which part of a window failed, and how; the message never repeats the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallWindowError {
    #[error("must be a time of day as HH:MM")]
    BadTime { field: &'static str },
    #[error("must be a non-empty list of distinct days: mon, tue, wed, thu, fri, sat, sun")]
    BadDays,
    #[error("must end after it starts")]
    Empty,
    #[error("does not overlap the calling hours (Mon-Fri 08:00-20:00, Sat 09:00-18:00)")]
    NeverLegal,
}

impl CallWindowError {
    /// The sub-field at fault (`from`, `to`, `days`); `None`: the window as a whole.
    pub fn field(self) -> Option<&'static str> {
        match self {
            Self::BadTime { field } => Some(field),
            Self::BadDays => Some("days"),
            Self::Empty => Some("to"),
            Self::NeverLegal => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::BadTime { .. } => "invalid_time",
            Self::BadDays => "invalid_days",
            Self::Empty => "empty_window",
            Self::NeverLegal => "outside_calling_hours",
        }
    }
}

const DAY_CODES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_hm(input: &str, field: &'static str) -> Result<NaiveTime, CallWindowError> {
    let bad = CallWindowError::BadTime { field };
    let bytes = input.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return Err(bad);
    }
    let digits = |s: &str| -> Option<u32> {
        if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (h, m) = (
        digits(input.get(0..2).ok_or(bad)?).ok_or(bad)?,
        digits(input.get(3..5).ok_or(bad)?).ok_or(bad)?,
    );
    NaiveTime::from_hms_opt(h, m, 0).ok_or(bad)
}

fn weekday_bit(day: Weekday) -> u8 {
    1 << day.num_days_from_monday()
}

impl CallWindow {
    /// Parses a window: `from` and `to` as `HH:MM` (24 h), `to` after `from`; `days` as
    /// distinct codes `mon`…`sun` (`None`: every day). A window that never overlaps the
    /// legal calling hours on any of its days is refused ([`CallWindowError::NeverLegal`]).
    pub fn parse(from: &str, to: &str, days: Option<&[&str]>) -> Result<Self, CallWindowError> {
        let from = parse_hm(from, "from")?;
        let to = parse_hm(to, "to")?;
        let days = match days {
            None => 0x7f,
            Some([]) => return Err(CallWindowError::BadDays),
            Some(list) => {
                let mut mask = 0u8;
                for code in list {
                    let n = DAY_CODES
                        .iter()
                        .position(|c| *c == *code)
                        .ok_or(CallWindowError::BadDays)?;
                    if mask & (1 << n) != 0 {
                        return Err(CallWindowError::BadDays);
                    }
                    mask |= 1 << n;
                }
                mask
            }
        };
        if to <= from {
            return Err(CallWindowError::Empty);
        }
        let window = Self { from, to, days };
        let weekdays = [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ];
        if !weekdays.into_iter().any(|d| window.slot_on(d).is_some()) {
            return Err(CallWindowError::NeverLegal);
        }
        Ok(window)
    }

    pub fn from(&self) -> NaiveTime {
        self.from
    }

    pub fn to(&self) -> NaiveTime {
        self.to
    }

    /// The day codes, Monday first.
    pub fn days(&self) -> Vec<&'static str> {
        DAY_CODES
            .iter()
            .enumerate()
            .filter(|(n, _)| self.days & (1 << n) != 0)
            .map(|(_, c)| *c)
            .collect()
    }

    /// The stored form: `mon,tue,fri@10:00-12:30`.
    pub fn stored(&self) -> String {
        format!(
            "{}@{}-{}",
            self.days().join(","),
            self.from.format("%H:%M"),
            self.to.format("%H:%M")
        )
    }

    /// Reads [`CallWindow::stored`] back.
    pub fn from_stored(stored: &str) -> Option<Self> {
        let (days, times) = stored.split_once('@')?;
        let (from, to) = times.split_once('-')?;
        let days: Vec<&str> = days.split(',').collect();
        Self::parse(from, to, Some(&days)).ok()
    }

    /// The window's part of the legal hours of `day`, if any.
    fn slot_on(&self, day: Weekday) -> Option<(NaiveTime, NaiveTime)> {
        let (start, end) = legal_hours(day)?;
        if self.days & weekday_bit(day) == 0 {
            return None;
        }
        let (a, b) = (start.max(self.from), end.min(self.to));
        (a < b).then_some((a, b))
    }
}

/// The calling-hours rules: the Bundesland whose holidays apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallingRules {
    pub state: Bundesland,
}

impl Default for CallingRules {
    /// North Rhine-Westphalia, the controller's seat.
    fn default() -> Self {
        Self {
            state: Bundesland::NW,
        }
    }
}

/// How far ahead [`CallingRules::next_allowed`] looks: more than a year always holds a
/// slot for any window that passed [`CallWindow::parse`].
const HORIZON_DAYS: u64 = 400;

/// Local wall-clock time on `date` as an instant, with the offset in force then.
fn berlin_instant(date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let local = date.and_time(time);
    [3600i32, 7200].into_iter().find_map(|secs| {
        let utc = Utc.from_utc_datetime(&(local - chrono::Duration::seconds(i64::from(secs))));
        (berlin_offset(utc).local_minus_utc() == secs).then_some(utc)
    })
}

impl CallingRules {
    /// The slot `[start, end)` on a local date, as instants; `None` when no call may
    /// start that day.
    pub fn slot(
        &self,
        date: NaiveDate,
        window: Option<&CallWindow>,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if holiday(date, self.state).is_some() {
            return None;
        }
        let (a, b) = match window {
            Some(w) => w.slot_on(date.weekday())?,
            None => legal_hours(date.weekday())?,
        };
        Some((berlin_instant(date, a)?, berlin_instant(date, b)?))
    }

    /// Whether a call may start at `t` (see the module doc for the edges).
    pub fn allowed(&self, t: DateTime<Utc>, window: Option<&CallWindow>) -> bool {
        let date = t.with_timezone(&berlin_offset(t)).date_naive();
        self.slot(date, window)
            .is_some_and(|(start, end)| start <= t && t < end)
    }

    /// The first instant at or after `t` at which a call may start: `t` itself when
    /// allowed. `None` only past the end of the calendar.
    pub fn next_allowed(
        &self,
        t: DateTime<Utc>,
        window: Option<&CallWindow>,
    ) -> Option<DateTime<Utc>> {
        let first = t.with_timezone(&berlin_offset(t)).date_naive();
        (0..=HORIZON_DAYS).find_map(|n| {
            let date = first.checked_add_days(Days::new(n))?;
            let (start, end) = self.slot(date, window)?;
            (t < end).then_some(start.max(t))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const NW: CallingRules = CallingRules {
        state: Bundesland::NW,
    };

    /// R7.2: Easter by the Gregorian computus matches the published dates (2024–2030,
    /// 2038's late Easter, 2285's earliest possible).
    #[test]
    fn easter_matches_known_dates() {
        for (y, m, d) in [
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2029, 4, 1),
            (2030, 4, 21),
            (2038, 4, 25),
            (2285, 3, 22),
        ] {
            assert_eq!(easter_sunday(y), Some(date(y, m, d)), "{y}");
        }
    }

    /// R7.2: the holidays of 2026 fall on their known dates, federal ones in every state,
    /// state ones only in their states (Fronleichnam in NW, not in BE; Buß- und Bettag
    /// only in SN; Frauentag in BE and MV; Reformationstag in the north and east).
    #[test]
    fn holidays_of_2026_fall_on_their_dates_and_states() {
        for s in Bundesland::ALL {
            for (m, d, name) in [
                (1, 1, "Neujahr"),
                (4, 3, "Karfreitag"),
                (4, 6, "Ostermontag"),
                (5, 1, "Tag der Arbeit"),
                (5, 14, "Christi Himmelfahrt"),
                (5, 25, "Pfingstmontag"),
                (10, 3, "Tag der Deutschen Einheit"),
                (12, 25, "1. Weihnachtstag"),
                (12, 26, "2. Weihnachtstag"),
            ] {
                assert_eq!(holiday(date(2026, m, d), s), Some(name), "{s:?}");
            }
        }
        let states = |m, d| -> Vec<&str> {
            Bundesland::ALL
                .into_iter()
                .filter(|s| holiday(date(2026, m, d), *s).is_some())
                .map(Bundesland::code)
                .collect()
        };
        assert_eq!(states(1, 6), ["BW", "BY", "ST"]);
        assert_eq!(states(3, 8), ["BE", "MV"]);
        assert_eq!(
            states(6, 4),
            ["BW", "BY", "HE", "NW", "RP", "SL"],
            "Fronleichnam"
        );
        assert_eq!(states(8, 15), ["BY", "SL"]);
        assert_eq!(states(9, 20), ["TH"]);
        assert_eq!(
            states(10, 31),
            ["BB", "HB", "HH", "MV", "NI", "SN", "ST", "SH", "TH"]
        );
        assert_eq!(states(11, 1), ["BW", "BY", "NW", "RP", "SL"]);
        assert_eq!(states(11, 18), ["SN"], "Buß- und Bettag 2026");
        assert_eq!(buss_und_bettag(2025), Some(date(2025, 11, 19)));
        assert_eq!(buss_und_bettag(2027), Some(date(2027, 11, 17)));
        assert!(states(6, 5).is_empty() && states(11, 17).is_empty());
    }

    /// R7.2: at the edges a call may start at 08:00:00.000 and at 19:59:59.999 on a
    /// weekday, not at 07:59:59.999 nor at 20:00:00.000; Saturday 09:00–18:00 likewise
    /// (summer time: UTC+2).
    #[test]
    fn the_edges_are_start_inclusive_end_exclusive() {
        // Friday 2026-06-12, CEST.
        assert!(!NW.allowed(at("2026-06-12T05:59:59.999Z"), None));
        assert!(NW.allowed(at("2026-06-12T06:00:00Z"), None));
        assert!(NW.allowed(at("2026-06-12T17:59:59.999Z"), None));
        assert!(!NW.allowed(at("2026-06-12T18:00:00Z"), None));
        // Saturday 2026-06-13.
        assert!(!NW.allowed(at("2026-06-13T06:59:59Z"), None));
        assert!(NW.allowed(at("2026-06-13T07:00:00Z"), None));
        assert!(NW.allowed(at("2026-06-13T15:59:59.999Z"), None));
        assert!(!NW.allowed(at("2026-06-13T16:00:00Z"), None));
        // Winter time: Monday 2026-12-07 08:00 CET = 07:00Z.
        assert!(!NW.allowed(at("2026-12-07T06:59:59Z"), None));
        assert!(NW.allowed(at("2026-12-07T07:00:00Z"), None));
        assert!(!NW.allowed(at("2026-12-07T19:00:00Z"), None));
    }

    /// R7.2: the next slot for the issue's cases: Friday 19:59 is allowed at once, 23:40
    /// waits for 08:00, Saturday 18:30 and a Sunday wait for Monday 08:00, Christmas Eve
    /// evening waits past both Christmas days and the Sunday, Fronleichnam waits a day in
    /// NW and not in BE.
    #[test]
    fn next_slots_for_the_issue_cases() {
        let cases = [
            ("2026-06-12T17:59:00Z", "2026-06-12T17:59:00Z"), // Fri 19:59
            ("2026-06-10T21:40:00Z", "2026-06-11T06:00:00Z"), // Wed 23:40 -> Thu 08:00
            ("2026-06-13T16:30:00Z", "2026-06-15T06:00:00Z"), // Sat 18:30 -> Mon 08:00
            ("2026-06-14T10:00:00Z", "2026-06-15T06:00:00Z"), // Sun 12:00 -> Mon 08:00
            ("2026-12-24T19:30:00Z", "2026-12-28T07:00:00Z"), // Thu 24 Dec 20:30 -> Mon 28
            ("2026-06-04T08:00:00Z", "2026-06-05T06:00:00Z"), // Fronleichnam NW -> Fri
        ];
        for (asked, expected) in cases {
            assert_eq!(
                NW.next_allowed(at(asked), None),
                Some(at(expected)),
                "{asked}"
            );
        }
        let be = CallingRules {
            state: Bundesland::BE,
        };
        assert_eq!(
            be.next_allowed(at("2026-06-04T08:00:00Z"), None),
            Some(at("2026-06-04T08:00:00Z"))
        );
    }

    /// R7.2: across the DST switches slots keep their wall-clock times: the Saturday
    /// before the spring switch opens at 09:00 CET (08:00Z), the Monday after at 08:00
    /// CEST (06:00Z); in autumn the reverse.
    #[test]
    fn dst_switches_keep_wall_clock_slots() {
        // Spring: Sunday 2026-03-29.
        assert_eq!(
            NW.next_allowed(at("2026-03-27T19:00:00Z"), None),
            Some(at("2026-03-28T08:00:00Z"))
        );
        assert_eq!(
            NW.next_allowed(at("2026-03-28T17:00:00Z"), None),
            Some(at("2026-03-30T06:00:00Z"))
        );
        // Autumn: Sunday 2026-10-25.
        assert_eq!(
            NW.next_allowed(at("2026-10-24T16:00:00Z"), None),
            Some(at("2026-10-26T07:00:00Z"))
        );
    }

    /// R7.2: the preferred window intersects the legal hours: 10:00–12:30 on Tuesdays
    /// moves a Monday request to Tuesday 10:00; a window running past 20:00 ends at
    /// 20:00; one only on Sundays, or only after 20:00, is refused.
    #[test]
    fn the_preferred_window_intersects_the_legal_hours() {
        let w = CallWindow::parse("10:00", "12:30", Some(&["tue"])).unwrap();
        assert_eq!(
            NW.next_allowed(at("2026-06-15T07:00:00Z"), Some(&w)),
            Some(at("2026-06-16T08:00:00Z"))
        );
        assert!(NW.allowed(at("2026-06-16T10:29:59Z"), Some(&w)));
        assert!(!NW.allowed(at("2026-06-16T10:30:00Z"), Some(&w)));
        let late = CallWindow::parse("18:00", "23:00", None).unwrap();
        assert!(NW.allowed(at("2026-06-15T17:59:59Z"), Some(&late)));
        assert!(!NW.allowed(at("2026-06-15T18:00:00Z"), Some(&late)));
        // Saturday ends at 18:00: the evening window skips it.
        assert_eq!(
            NW.next_allowed(at("2026-06-12T18:00:00Z"), Some(&late)),
            Some(at("2026-06-15T16:00:00Z"))
        );
        assert_eq!(
            CallWindow::parse("10:00", "12:00", Some(&["sun"])),
            Err(CallWindowError::NeverLegal)
        );
        assert_eq!(
            CallWindow::parse("20:00", "23:00", None),
            Err(CallWindowError::NeverLegal)
        );
        assert_eq!(
            CallWindow::parse("18:00", "19:00", Some(&["sat"])),
            Err(CallWindowError::NeverLegal)
        );
    }

    /// R1.2, R7.2: malformed windows name the sub-field at fault.
    #[test]
    fn malformed_windows_name_the_field() {
        let err =
            |f, t, d: Option<&[&str]>| CallWindow::parse(f, t, d).unwrap_err().field().unwrap();
        assert_eq!(err("9:00", "12:00", None), "from");
        assert_eq!(err("24:00", "12:00", None), "from");
        assert_eq!(err("10:00", "12:60", None), "to");
        assert_eq!(err("10:00", "1200 ", None), "to");
        assert_eq!(err("12:00", "10:00", None), "to");
        assert_eq!(err("10:00", "12:00", Some(&[])), "days");
        assert_eq!(err("10:00", "12:00", Some(&["monday"])), "days");
        assert_eq!(err("10:00", "12:00", Some(&["mon", "mon"])), "days");
    }

    #[test]
    fn the_stored_form_round_trips() {
        let w = CallWindow::parse("10:00", "12:30", Some(&["fri", "mon"])).unwrap();
        assert_eq!(w.stored(), "mon,fri@10:00-12:30");
        assert_eq!(CallWindow::from_stored(&w.stored()), Some(w));
        assert_eq!(CallWindow::from_stored("garbage"), None);
    }

    fn any_window() -> impl Strategy<Value = Option<CallWindow>> {
        prop_oneof![
            Just(None),
            (0u32..24 * 4, 1u32..24 * 4, 1u8..0x80).prop_filter_map(
                "legal window",
                |(from, len, days)| {
                    let f = from * 15;
                    let t = (f + len * 15).min(23 * 60 + 59);
                    let hhmm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
                    let codes: Vec<&str> = DAY_CODES
                        .iter()
                        .enumerate()
                        .filter(|(n, _)| days & (1 << n) != 0)
                        .map(|(_, c)| *c)
                        .collect();
                    CallWindow::parse(&hhmm(f), &hhmm(t), Some(&codes))
                        .ok()
                        .map(Some)
                }
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// R7.2: for any instant 2024–2035, any state and any window: the answer is
        /// allowed, never earlier than asked, equal to the instant when that is allowed,
        /// and no instant in between is allowed (checked at every minute boundary and
        /// just before the answer).
        #[test]
        fn next_allowed_is_the_first_allowed_instant(
            secs in 1_704_067_200i64..2_082_758_400,
            state in 0usize..16,
            window in any_window(),
        ) {
            let rules = CallingRules { state: Bundesland::ALL[state] };
            let t = DateTime::from_timestamp(secs, 0).unwrap();
            let next = rules.next_allowed(t, window.as_ref()).unwrap();
            prop_assert!(next >= t);
            prop_assert!(rules.allowed(next, window.as_ref()));
            prop_assert_eq!(next == t, rules.allowed(t, window.as_ref()));
            if next > t {
                prop_assert!(!rules.allowed(next - chrono::Duration::milliseconds(1), window.as_ref()));
                let mut probe = t;
                while probe < next {
                    prop_assert!(!rules.allowed(probe, window.as_ref()), "{probe}");
                    // Slots start on full minutes: probing each minute finds any of them.
                    probe = DateTime::from_timestamp((probe.timestamp() / 60 + 1) * 60, 0).unwrap();
                }
            }
            let local = next.with_timezone(&berlin_offset(next));
            prop_assert!(local.weekday() != Weekday::Sun);
            prop_assert!(holiday(local.date_naive(), rules.state).is_none());
        }
    }
}
