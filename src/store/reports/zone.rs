//! A report's time zone: its days and weeks start at local midnight, summer time
//! followed. The rollups are kept per UTC hour, so a zone serves when every offset it
//! takes over the range is a whole number of hours; the range is cut where the offset
//! changes and each piece's hours are put into local buckets, which the report then
//! names by their true start.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::HOUR_MS;

const DAY_MS: i64 = 24 * HOUR_MS;

/// How hours are put into buckets, in local time: `(local + shift) / width * width -
/// shift` is the start of the bucket of `local` (ms from the local epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    /// The bucket's width (ms).
    pub width: i64,
    /// How far the epoch is from a bucket's start (ms): weeks start on Monday, and the
    /// epoch was a Thursday, three days after one.
    pub shift: i64,
}

impl Buckets {
    /// Hours.
    pub const HOUR: Buckets = Buckets {
        width: HOUR_MS,
        shift: 0,
    };
    /// Days, from local midnight.
    pub const DAY: Buckets = Buckets {
        width: DAY_MS,
        shift: 0,
    };
    /// Weeks, from Monday's local midnight.
    pub const WEEK: Buckets = Buckets {
        width: 7 * DAY_MS,
        shift: 3 * DAY_MS,
    };

    /// The local start of the bucket of local time `local` (ms).
    pub fn local_start(self, local: i64) -> i64 {
        (local + self.shift).div_euclid(self.width) * self.width - self.shift
    }
}

/// A time zone reports may be given in.
#[derive(Debug, Clone)]
pub struct Zone {
    tz: TimeZone,
    name: String,
}

/// A piece of a range over which the zone's offset stays the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Its start (ms, UTC, on an hour).
    pub from: i64,
    /// Its end (ms, exclusive).
    pub to: i64,
    /// The offset from UTC over it (ms).
    pub offset: i64,
}

/// The zone of an IANA name (`UTC`, `Europe/Berlin`, `Asia/Shanghai`…), or why not.
pub fn parse(name: &str) -> Result<Zone, String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err("must be an IANA time zone such as Europe/Berlin or Asia/Shanghai".into());
    }
    let tz = TimeZone::get(name).map_err(|_| {
        format!("'{name}' is not a time zone (an IANA name such as Europe/Berlin or Asia/Shanghai)")
    })?;
    let zone = Zone {
        tz,
        name: name.to_string(),
    };
    // A zone that is never a whole number of hours from UTC is refused at once; one that
    // is only at times (rare historical offsets) is refused for a range that meets them.
    let now = Timestamp::now().as_millisecond();
    zone.pieces(now - 400 * DAY_MS, now + 400 * DAY_MS)?;
    Ok(zone)
}

impl Zone {
    /// Its IANA name, as asked.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its offset from UTC at `at` (ms).
    pub fn offset_at(&self, at: i64) -> i64 {
        let t = Timestamp::from_millisecond(at).unwrap_or(Timestamp::UNIX_EPOCH);
        i64::from(self.tz.to_offset(t).seconds()) * 1000
    }

    /// `[from, to)` cut where the offset changes, or why the zone cannot serve it: an
    /// offset over it is not a whole number of hours.
    pub fn pieces(&self, from: i64, to: i64) -> Result<Vec<Piece>, String> {
        let mut out = Vec::new();
        let mut start = from;
        let mut offset = self.offset_at(from);
        let begin = Timestamp::from_millisecond(from).unwrap_or(Timestamp::UNIX_EPOCH);
        for t in self.tz.following(begin) {
            let at = t.timestamp().as_millisecond();
            if at >= to {
                break;
            }
            out.push(Piece {
                from: start,
                to: at,
                offset,
            });
            start = at;
            offset = i64::from(t.offset().seconds()) * 1000;
        }
        out.push(Piece {
            from: start,
            to,
            offset,
        });
        out.retain(|p| p.to > p.from);
        if let Some(p) = out.iter().find(|p| p.offset % HOUR_MS != 0) {
            let mins = p.offset.abs() / 60_000;
            let sign = if p.offset < 0 { '-' } else { '+' };
            return Err(format!(
                "{} is {sign}{}:{:02} from UTC, not a whole number of hours: reports are kept \
                 per hour, so its days cannot be told apart (choose a zone a whole number of \
                 hours from UTC)",
                self.name,
                mins / 60,
                mins % 60
            ));
        }
        Ok(out)
    }

    /// The instant (ms, UTC) at which the local time `local` (ms from the local epoch)
    /// comes; a local time summer time skips comes at the end of the gap.
    pub fn instant_of_local(&self, local: i64) -> i64 {
        let wall = Timestamp::from_millisecond(local)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .to_zoned(TimeZone::UTC)
            .datetime();
        self.tz
            .to_ambiguous_timestamp(wall)
            .compatible()
            .map_or(local, |t| t.as_millisecond())
    }

    /// Local midnight of `date` (ms, UTC).
    pub fn midnight(&self, date: jiff::civil::Date) -> Option<i64> {
        date.to_zoned(self.tz.clone())
            .ok()
            .map(|z| z.timestamp().as_millisecond())
    }

    /// `at` as RFC 3339 in local time with its offset (`2026-10-01T00:00:00+08:00`); in
    /// UTC with `Z`.
    pub fn rfc3339(&self, at: i64) -> String {
        if self.name == "UTC" {
            return crate::store::rfc3339(at);
        }
        let t = Timestamp::from_millisecond(at).unwrap_or(Timestamp::UNIX_EPOCH);
        t.to_zoned(self.tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        crate::store::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn a_summer_time_range_is_cut_where_the_clocks_change() {
        let z = parse("Europe/Berlin").unwrap();
        let p = z
            .pieces(at("2026-10-20T00:00:00Z"), at("2026-11-01T00:00:00Z"))
            .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].offset, 2 * HOUR_MS);
        assert_eq!(p[0].to, at("2026-10-25T01:00:00Z"));
        assert_eq!(p[1].offset, HOUR_MS);
        // The day the clocks go back has 25 hours, from local midnight to local midnight.
        let day = Buckets::DAY.local_start(p[0].to + p[0].offset - 1);
        assert_eq!(z.instant_of_local(day), at("2026-10-24T22:00:00Z"));
        assert_eq!(z.instant_of_local(day + DAY_MS), at("2026-10-25T23:00:00Z"));
        assert_eq!(
            z.rfc3339(at("2026-10-24T22:00:00Z")),
            "2026-10-25T00:00:00+02:00"
        );
    }

    #[test]
    fn zones_off_the_hour_and_unknown_names_are_refused_by_name() {
        assert!(parse("Asia/Shanghai").is_ok());
        let e = parse("Asia/Kolkata").unwrap_err();
        assert!(e.contains("Asia/Kolkata is +5:30"), "{e}");
        let e = parse("Mars/Olympus").unwrap_err();
        assert!(e.contains("'Mars/Olympus' is not a time zone"), "{e}");
        assert!(parse("").is_err());
    }

    #[test]
    fn weeks_start_on_monday_in_local_time() {
        let z = parse("Asia/Shanghai").unwrap();
        // Thursday 2026-10-01 00:00 in Shanghai is 16:00 UTC the day before.
        let local = at("2026-09-30T16:00:00Z") + 8 * HOUR_MS;
        let monday = Buckets::WEEK.local_start(local);
        assert_eq!(
            z.rfc3339(z.instant_of_local(monday)),
            "2026-09-28T00:00:00+08:00"
        );
    }
}
