//! Calendars: when a contact centre is open. Opening hours per weekday (several periods a
//! day) in a time zone, and holidays — a date, or a day every year. Everything a
//! commitment counts (how long until a first answer is due, whether a call is answered
//! as closed, when a contact taken at night is routed) is counted in a calendar's open
//! time. Pure: time in, time out (milliseconds since the epoch).

use std::collections::BTreeSet;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// A calendar as the rules document writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarDoc {
    /// An IANA time zone (`Europe/Berlin`, `Asia/Shanghai`, `UTC`).
    pub time_zone: String,
    /// Open every minute of every day (a 24/7 line): the weekdays and holidays are not
    /// read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub always_open: bool,
    /// Monday's open periods, `"HH:MM-HH:MM"` each (`"24:00"` ends at midnight).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monday: Vec<String>,
    /// Tuesday's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tuesday: Vec<String>,
    /// Wednesday's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wednesday: Vec<String>,
    /// Thursday's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thursday: Vec<String>,
    /// Friday's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub friday: Vec<String>,
    /// Saturday's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub saturday: Vec<String>,
    /// Sunday's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sunday: Vec<String>,
    /// Closed all day: `"2026-12-24"` on that date, `"12-25"` every year.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<String>,
}

/// A calendar, checked and ready to count with.
#[derive(Debug, Clone)]
pub struct Calendar {
    tz: TimeZone,
    always: bool,
    /// Monday first: open periods as minutes from midnight, sorted, not overlapping.
    week: [Vec<(u16, u16)>; 7],
    dates: BTreeSet<Date>,
    yearly: BTreeSet<(i8, i8)>,
}

/// How far ahead an opening is looked for (a calendar closed for longer is never open).
const HORIZON_DAYS: i32 = 400;

const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl Calendar {
    /// Checks `doc` (errors name the field, under `at`) and builds the calendar.
    pub fn build(at: &str, doc: &CalendarDoc) -> Result<Calendar, Vec<String>> {
        let mut errors = Vec::new();
        let tz = match TimeZone::get(doc.time_zone.trim()) {
            Ok(tz) => Some(tz),
            Err(_) => {
                errors.push(format!(
                    "{at}.time_zone: '{}' is not a time zone (an IANA name such as Europe/Berlin or Asia/Shanghai)",
                    doc.time_zone
                ));
                None
            }
        };
        let days = [
            &doc.monday,
            &doc.tuesday,
            &doc.wednesday,
            &doc.thursday,
            &doc.friday,
            &doc.saturday,
            &doc.sunday,
        ];
        let mut week: [Vec<(u16, u16)>; 7] = Default::default();
        for (i, periods) in days.iter().enumerate() {
            let field = format!("{at}.{}", DAYS[i]);
            for (n, p) in periods.iter().enumerate() {
                match period(p) {
                    Ok(span) => week[i].push(span),
                    Err(e) => errors.push(format!("{field}[{n}]: {e}")),
                }
            }
            week[i].sort_unstable();
            for pair in week[i].windows(2) {
                if pair[1].0 < pair[0].1 {
                    errors.push(format!(
                        "{field}: the periods {} and {} overlap",
                        show(pair[0]),
                        show(pair[1])
                    ));
                }
            }
        }
        let mut dates = BTreeSet::new();
        let mut yearly = BTreeSet::new();
        for (n, h) in doc.holidays.iter().enumerate() {
            let h = h.trim();
            if let Ok(d) = h.parse::<Date>() {
                dates.insert(d);
            } else if let Some((m, d)) = month_day(h) {
                yearly.insert((m, d));
            } else {
                errors.push(format!(
                    "{at}.holidays[{n}]: '{h}' is neither a date (2026-12-24) nor a day every year (12-25)"
                ));
            }
        }
        if !doc.always_open && week.iter().all(Vec::is_empty) {
            errors.push(format!(
                "{at}: it is never open; give a weekday's periods, or always_open = true"
            ));
        }
        match (tz, errors.is_empty()) {
            (Some(tz), true) => Ok(Calendar {
                tz,
                always: doc.always_open,
                week,
                dates,
                yearly,
            }),
            _ => Err(errors),
        }
    }

    /// A calendar open at every moment (in UTC).
    pub fn always() -> Calendar {
        Calendar {
            tz: TimeZone::UTC,
            always: true,
            week: Default::default(),
            dates: BTreeSet::new(),
            yearly: BTreeSet::new(),
        }
    }

    /// The calendar's time zone's name.
    pub fn time_zone(&self) -> &str {
        self.tz.iana_name().unwrap_or("UTC")
    }

    /// `at` as a reader of the calendar's time zone writes it: `Mon 2026-12-07 08:00
    /// (Europe/Berlin)`.
    pub fn local(&self, at: i64) -> String {
        let z = jiff::Timestamp::from_millisecond(at)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(self.tz.clone());
        format!("{} ({})", z.strftime("%a %Y-%m-%d %H:%M"), self.time_zone())
    }

    /// Whether it is open at `at`.
    pub fn is_open(&self, at: i64) -> bool {
        self.always
            || self
                .periods_around(at)
                .iter()
                .any(|(s, e)| *s <= at && at < *e)
    }

    /// The first moment at or after `at` when it is open (`at` itself when open now);
    /// `None` when it never opens within a year.
    pub fn next_open(&self, at: i64) -> Option<i64> {
        if self.always {
            return Some(at);
        }
        self.intervals_from(at).next().map(|(s, _)| s.max(at))
    }

    /// The first moment after `at` when it closes while open now, or opens while closed.
    pub fn next_change(&self, at: i64) -> Option<i64> {
        if self.always {
            return None;
        }
        let (s, e) = self.intervals_from(at).next()?;
        Some(if s <= at { e } else { s })
    }

    /// Open milliseconds between `from` and `to`.
    pub fn open_between(&self, from: i64, to: i64) -> i64 {
        if to <= from {
            return 0;
        }
        if self.always {
            return to - from;
        }
        let mut total = 0;
        for (s, e) in self.intervals_from(from) {
            if s >= to {
                break;
            }
            total += e.min(to) - s.max(from);
        }
        total
    }

    /// The moment when `open_ms` of open time has passed since `from`; `None` when the
    /// calendar does not open enough within a year.
    pub fn after_open(&self, from: i64, open_ms: i64) -> Option<i64> {
        if self.always {
            return Some(from + open_ms);
        }
        let mut left = open_ms;
        for (s, e) in self.intervals_from(from) {
            let s = s.max(from);
            if e - s >= left {
                return Some(s + left);
            }
            left -= e - s;
        }
        None
    }

    /// The open intervals (start, end) that end after `at`, in order, within the horizon.
    fn intervals_from(&self, at: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
        let start = self
            .local_date(at)
            .yesterday()
            .unwrap_or(self.local_date(at));
        (0..HORIZON_DAYS + 1)
            .filter_map(move |n| start.checked_add(jiff::Span::new().days(n)).ok())
            .flat_map(move |d| self.day(d))
            .filter(move |(_, e)| *e > at)
    }

    /// The open intervals of the days around `at` (its local day and the one before,
    /// whose last period may run past midnight in another offset).
    fn periods_around(&self, at: i64) -> Vec<(i64, i64)> {
        let d = self.local_date(at);
        let mut out = d.yesterday().map(|y| self.day(y)).unwrap_or_default();
        out.extend(self.day(d));
        out
    }

    fn local_date(&self, at: i64) -> Date {
        jiff::Timestamp::from_millisecond(at)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(self.tz.clone())
            .date()
    }

    /// A local day's open intervals as instants (none on a holiday).
    fn day(&self, d: Date) -> Vec<(i64, i64)> {
        if self.dates.contains(&d) || self.yearly.contains(&(d.month(), d.day())) {
            return Vec::new();
        }
        let weekday = d.weekday().to_monday_zero_offset() as usize;
        self.week[weekday]
            .iter()
            .filter_map(|(s, e)| Some((self.instant(d, *s)?, self.instant(d, *e)?)))
            .filter(|(s, e)| s < e)
            .collect()
    }

    /// The instant of `minutes` after local midnight of `d` (24:00 is the next midnight).
    fn instant(&self, d: Date, minutes: u16) -> Option<i64> {
        let (day, minutes) = if minutes >= 24 * 60 {
            (d.tomorrow().ok()?, minutes - 24 * 60)
        } else {
            (d, minutes)
        };
        let t = Time::new((minutes / 60) as i8, (minutes % 60) as i8, 0, 0).ok()?;
        let zoned = day.to_datetime(t).to_zoned(self.tz.clone()).ok()?;
        Some(zoned.timestamp().as_millisecond())
    }
}

/// `"HH:MM-HH:MM"` as minutes from midnight.
fn period(p: &str) -> Result<(u16, u16), String> {
    let bad = || format!("'{p}' is not a period such as \"09:00-17:30\"");
    let (a, b) = p.trim().split_once('-').ok_or_else(bad)?;
    let minute = |s: &str| -> Option<u16> {
        let (h, m) = s.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
    };
    let (s, e) = (minute(a).ok_or_else(bad)?, minute(b).ok_or_else(bad)?);
    if s >= e {
        return Err(format!(
            "'{p}' ends before it starts (a period past midnight is two: one each day)"
        ));
    }
    Ok((s, e))
}

fn show((s, e): (u16, u16)) -> String {
    format!("{:02}:{:02}-{:02}:{:02}", s / 60, s % 60, e / 60, e % 60)
}

/// `"MM-DD"`, a day every year.
fn month_day(s: &str) -> Option<(i8, i8)> {
    let (m, d) = s.split_once('-')?;
    if m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (m, d): (i8, i8) = (m.parse().ok()?, d.parse().ok()?);
    // A real day in a leap year (02-29 allowed).
    Date::new(2024, m, d).ok()?;
    Some((m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn office() -> Calendar {
        Calendar::build(
            "calendars.office",
            &CalendarDoc {
                time_zone: "Europe/Berlin".into(),
                monday: vec!["09:00-12:30".into(), "13:30-18:00".into()],
                tuesday: vec!["09:00-18:00".into()],
                wednesday: vec!["09:00-18:00".into()],
                thursday: vec!["09:00-18:00".into()],
                friday: vec!["09:00-16:00".into()],
                holidays: vec!["12-25".into(), "2026-12-24".into()],
                ..CalendarDoc::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn open_by_the_weekday_periods_in_its_own_time_zone() {
        let c = office();
        // Monday 2026-11-30, Berlin is UTC+1 in winter.
        assert!(!c.is_open(ms("2026-11-30T07:59:00Z")));
        assert!(c.is_open(ms("2026-11-30T08:00:00Z")));
        assert!(!c.is_open(ms("2026-11-30T11:45:00Z")), "lunch");
        assert!(c.is_open(ms("2026-11-30T12:30:00Z")));
        assert!(!c.is_open(ms("2026-12-05T10:00:00Z")), "Saturday");
        // In summer Berlin is UTC+2: opening at 07:00 UTC.
        assert!(c.is_open(ms("2026-06-01T07:00:00Z")));
    }

    #[test]
    fn holidays_close_whole_days_once_or_every_year() {
        let c = office();
        assert!(!c.is_open(ms("2026-12-24T10:00:00Z")), "a date");
        assert!(!c.is_open(ms("2026-12-25T10:00:00Z")), "every year");
        assert!(!c.is_open(ms("2030-12-25T10:00:00Z")));
        assert!(
            c.is_open(ms("2027-12-24T10:00:00Z")),
            "the date was 2026's only"
        );
    }

    #[test]
    fn the_next_opening_skips_nights_weekends_and_holidays() {
        let c = office();
        // Friday 2026-12-18 after closing: Monday 09:00 Berlin.
        assert_eq!(
            c.next_open(ms("2026-12-18T16:00:00Z")),
            Some(ms("2026-12-21T08:00:00Z"))
        );
        // Wednesday 23rd after closing: 24th and 25th are holidays: Saturday, Sunday
        // closed: Monday 28th.
        assert_eq!(
            c.next_open(ms("2026-12-23T18:00:00Z")),
            Some(ms("2026-12-28T08:00:00Z"))
        );
        let now = ms("2026-11-30T09:00:00Z");
        assert_eq!(c.next_open(now), Some(now));
        assert_eq!(c.next_change(now), Some(ms("2026-11-30T11:30:00Z")));
    }

    #[test]
    fn open_time_is_counted_only_while_open() {
        let c = office();
        // Friday 15:00 Berlin to Monday 10:00 Berlin: one hour Friday, one Monday.
        let (from, to) = (ms("2026-12-18T14:00:00Z"), ms("2026-12-21T09:00:00Z"));
        assert_eq!(c.open_between(from, to), 2 * 3_600_000);
        // Four open hours from Friday 15:00: one on Friday, three on Monday.
        assert_eq!(
            c.after_open(from, 4 * 3_600_000),
            Some(ms("2026-12-21T11:00:00Z"))
        );
        let always = Calendar::always();
        assert_eq!(always.after_open(from, 5), Some(from + 5));
        assert!(always.is_open(from));
    }

    #[test]
    fn bad_calendars_are_refused_with_the_field_named() {
        let err = Calendar::build(
            "calendars.x",
            &CalendarDoc {
                time_zone: "Mars/Olympus".into(),
                monday: vec!["09:00-12:00".into(), "11:00-13:00".into()],
                tuesday: vec!["18:00-09:00".into(), "9-5".into()],
                holidays: vec!["13-45".into()],
                ..CalendarDoc::default()
            },
        )
        .unwrap_err();
        let all = err.join("\n");
        for want in [
            "calendars.x.time_zone",
            "calendars.x.monday: the periods 09:00-12:00 and 11:00-13:00 overlap",
            "calendars.x.tuesday[0]: '18:00-09:00' ends before it starts",
            "calendars.x.tuesday[1]",
            "calendars.x.holidays[0]",
        ] {
            assert!(all.contains(want), "{want} missing in:\n{all}");
        }
        let never = Calendar::build(
            "calendars.y",
            &CalendarDoc {
                time_zone: "UTC".into(),
                ..CalendarDoc::default()
            },
        )
        .unwrap_err();
        assert!(never[0].contains("never open"), "{never:?}");
    }
}
