//! The routing rules document (TOML), parsed and validated as the rules file at start,
//! `PUT /api/rules` and the simulator's candidate rules are, then used as the router uses
//! a valid document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::routing::rings::rings_open;
use switchboard::routing::rules::Ring;
use switchboard::routing::rules::Rules;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tiers: Vec<String> = ["high", "medium", "low"].map(String::from).to_vec();
    let (rules, report) = match Rules::check(text, "fuzz", &tiers) {
        Err(report) => {
            assert!(!report.errors.is_empty());
            return;
        }
        Ok(checked) => checked,
    };
    assert!(report.errors.is_empty());
    // The router can use what validation let through: rings open in order for any wait,
    // and every plan is found for its tier and topic.
    for plan in &rules.rings {
        let mut last = 0;
        for waited_ms in [i64::MIN, -1, 0, 1, 999, 60_000, 86_400_000, i64::MAX] {
            let steps: Vec<&Ring> = plan.steps.iter().collect();
            let open = rings_open(&steps, waited_ms);
            assert!((1..=plan.steps.len()).contains(&open));
            assert!(open >= last, "rings close as the wait grows");
            last = open;
        }
        for tier in &tiers {
            if plan.tier == *tier || plan.tier == "*" {
                assert!(!rules.rings_for(tier, plan.topic.as_deref()).is_empty());
            }
        }
    }
    // The router counts milliseconds on i64 from now (`now + secs * 1000`): every time a
    // valid document names fits, for any now this century.
    const YEAR_2100_MS: i64 = 4_102_444_800_000;
    let ring_secs = rules
        .rings
        .iter()
        .flat_map(|p| p.steps.iter().filter_map(|r| r.timeout_secs));
    let tier_secs = rules
        .tiers
        .values()
        .flat_map(|t| [t.target_secs, t.head_start_secs, t.max_wait_secs])
        .flatten();
    let window_secs = rules.fair_wait.window_hours.saturating_mul(3600);
    for secs in [rules.offer.timeout_secs, rules.offer.wrap_up_secs, window_secs]
        .into_iter()
        .chain(tier_secs)
        .chain(ring_secs)
    {
        let at = i64::try_from(secs)
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .and_then(|ms| ms.checked_add(YEAR_2100_MS));
        assert!(at.is_some(), "{secs} seconds overflow the router's clock");
    }
    // Written out and read back, the same rules with the same report.
    let written = toml::to_string(&rules).expect("valid rules serialize to TOML");
    let again = Rules::check(&written, "written", &tiers);
    assert_eq!(again, Ok((rules, report)), "{written}");
});
