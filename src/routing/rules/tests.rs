//! The rules: parsing, validation with every error named by where it is.

use super::*;

/// The head-start rules shipped beside the default.
const HEAD_START_TOML: &str = include_str!("../../../config/routing-head-start.toml");

fn tiers() -> Vec<String> {
    vec!["high".into(), "medium".into(), "low".into()]
}

#[test]
fn the_shipped_rules_are_valid_and_clean() {
    let rules = Rules::parse(DEFAULT_TOML, "default").unwrap();
    let report = rules.validate(&tiers());
    assert_eq!(report, Report::default());
}

#[test]
fn ring_plans_are_found_most_specific_first() {
    let rules = Rules::parse(DEFAULT_TOML, "default").unwrap();
    assert!(rules.rings_for("high", None)[1].min_level == Some(3));
    assert!(
        rules.rings_for("high", Some("complaint"))[1].min_level == Some(3),
        "the tier's own plan beats '*' with a topic"
    );
    assert_eq!(
        rules.rings_for("low", Some("complaint"))[1].skills,
        ["complaints"]
    );
    assert!(rules.rings_for("low", Some("billing"))[1].topic_skill);
    let none = Rules {
        rings: Vec::new(),
        ..rules
    };
    assert_eq!(none.rings_for("low", None), &EVERYONE);
}

#[test]
fn every_error_is_listed_with_where_it_is() {
    let text = r#"
        [selection]
        strategy = "longest_idle"
        [offer]
        timeout_secs = 0
        misses_before_away = 3
        wrap_up_secs = 30
        [capacity]
        phone = 1
        chat = 3
        email = 5
        api = 5
        calls_block_other_work = true
        [tiers.high]
        head_start_secs = 0
        max_wait_secs = 20
        [tiers.gold]
        head_start_secs = 10
        max_wait_secs = 20
        [[rings]]
        tier = "vip"
        steps = [{ owner = true }, {}]
    "#;
    let report = Rules::parse(text, "t").unwrap().validate(&tiers());
    let joined = report.errors.join("\n");
    for expected in [
        "offer.timeout_secs",
        "tiers.medium: missing",
        "tiers.low: missing",
        "tiers.gold: 'gold' is not a configured tier",
        "rings[0].tier: 'vip'",
        "rings[0].steps[0].timeout_secs: needed",
    ] {
        assert!(
            joined.contains(expected),
            "missing {expected:?} in:\n{joined}"
        );
    }
    assert_eq!(report.errors.len(), 6, "{joined}");
}

#[test]
fn doubtful_rules_are_warned_about() {
    let mut rules = Rules::parse(DEFAULT_TOML, "default").unwrap();
    rules.rings[0].steps.pop();
    rules.tiers.get_mut("high").unwrap().head_start_secs = Some(0);
    let report = rules.validate(&tiers());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let joined = report.warnings.join("\n");
    assert!(
        joined.contains("its widest ring is not every agent"),
        "{joined}"
    );
    assert!(
        joined.contains("the last ring has no next ring"),
        "{joined}"
    );
    assert!(joined.contains("tiers.high.head_start_secs"), "{joined}");
}

#[test]
fn a_rules_file_that_cannot_be_read_is_an_error_not_an_empty_document() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routing.toml");
    // There, and not text: it cannot be read as a rules document.
    std::fs::write(&file, [0xff, 0xfe, 0x00]).unwrap();
    for given in [Some(file.as_path()), None] {
        let err = Rules::read_source_or(given, &file).unwrap_err();
        assert!(err.errors[0].contains("cannot be read"), "{err:?}");
    }
}

#[test]
fn numbers_too_large_for_the_router_are_errors_not_overflows() {
    // Capacities were summed as u32 to see that one is not 0: these overflowed (a
    // panic with overflow checks, a wrong "every channel is 0" without).
    let text = DEFAULT_TOML.replace("phone = 1", "phone = 4294967295");
    let (rules, report) = Rules::check(&text, "t", &tiers()).unwrap();
    assert_eq!(rules.capacity.phone, u32::MAX);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let zero = "phone = 0\nchat = 0\nemail = 0\napi = 0";
    let text = DEFAULT_TOML.replace("phone = 1\nchat = 3\nemail = 5\napi = 5", zero);
    let joined = Rules::check(&text, "t", &tiers())
        .unwrap_err()
        .errors
        .join("\n");
    assert!(joined.contains("capacity: every channel is 0"), "{joined}");
    // Seconds the router would overflow in milliseconds from now (a ring's timeout
    // here: the rings after it opened at once, or never): refused by name.
    let offer = "# Seconds an agent has to accept an offer.\ntimeout_secs = 20";
    let text = DEFAULT_TOML
        .replace(offer, "timeout_secs = 9223372036854775807")
        .replace(
            "min_level = 3, timeout_secs = 5",
            "min_level = 3, timeout_secs = 9223372036854775807",
        )
        .replace("target_secs = 60", "target_secs = 31536001");
    let report = Rules::check(&text, "t", &tiers()).unwrap_err();
    let joined = report.errors.join("\n");
    for at in [
        "offer.timeout_secs: at most 31536000",
        "tiers.medium.target_secs: at most 31536000",
        "rings[0].steps[1].timeout_secs: at most 31536000",
    ] {
        assert!(joined.contains(at), "missing {at:?} in:\n{joined}");
    }
    assert_eq!(report.errors.len(), 3, "{joined}");
    let text = HEAD_START_TOML.replace("max_wait_secs = 600", "max_wait_secs = 31536001");
    let joined = Rules::check(&text, "t", &tiers())
        .unwrap_err()
        .errors
        .join("\n");
    assert!(
        joined.contains("tiers.low.max_wait_secs: at most 31536000"),
        "{joined}"
    );
    // A year is allowed, and the router's arithmetic holds with it.
    let text = DEFAULT_TOML.replace(
        "min_level = 3, timeout_secs = 5",
        "min_level = 3, timeout_secs = 31536000",
    );
    let (rules, _) = Rules::check(&text, "t", &tiers()).unwrap();
    let steps: Vec<&Ring> = rules.rings[0].steps.iter().collect();
    assert_eq!(crate::routing::rings::rings_open(&steps, i64::MAX), 3);
}

#[test]
fn the_shipped_head_start_rules_are_valid_clean_and_ordered_by_head_starts() {
    let (rules, report) = Rules::check(HEAD_START_TOML, "head start", &tiers()).unwrap();
    assert_eq!(report, Report::default());
    assert_eq!(rules.order, Order::HeadStart);
    assert_eq!(rules.service_target_secs("low"), Some(600));
    let (rules, _) = Rules::check(DEFAULT_TOML, "default", &tiers()).unwrap();
    assert_eq!(rules.order, Order::Targets);
    assert_eq!(rules.service_target_secs("high"), Some(20));
    assert_eq!(
        rules.service_target_secs("low"),
        None,
        "the low tier has no target"
    );
}

#[test]
fn a_document_written_before_the_target_order_keeps_its_head_starts() {
    // Stored versions and rules files of before name no order: they mean head starts.
    let before = HEAD_START_TOML.replace("order = \"head_start\"\n", "");
    assert!(!before.contains("order ="));
    let (rules, report) = Rules::check(&before, "v1", &tiers()).unwrap();
    assert_eq!(rules.order, Order::HeadStart);
    assert!(
        report.errors.is_empty() && report.warnings.is_empty(),
        "{report:?}"
    );
}

#[test]
fn the_target_order_is_checked_field_by_field() {
    let text = DEFAULT_TOML
        .replace("window_hours = 168", "window_hours = 0")
        .replace("limit = 1.25", "limit = 0.2")
        .replace("warning = 1.05", "warning = 1.5")
        .replace("target_secs = 20", "target_secs = 0")
        .replace(
            "target_secs = 60\n",
            "urgent = true\nhead_start_secs = 60\n",
        );
    let report = Rules::check(&text, "t", &tiers()).unwrap_err();
    let errors = report.errors.join("\n");
    for at in [
        "fair_wait.window_hours: between 1 and 8760",
        "fair_wait.limit: a multiple between 0.5 and 10, not 0.2",
        "fair_wait.warning: 1.5 is past the limit 0.2",
        "tiers.high.target_secs: must be at least 1",
        "tiers.medium.urgent: needs target_secs",
    ] {
        assert!(errors.contains(at), "missing {at:?} in:\n{errors}");
    }
    assert_eq!(report.errors.len(), 5, "{errors}");
    assert!(
        report.warnings.join("\n").contains(
            "tiers.medium.head_start_secs: used only with order = \"head_start\"; ignored"
        ),
        "{:?}",
        report.warnings
    );
    // The head-start order needs its own fields, named.
    let text = HEAD_START_TOML.replace("head_start_secs = 0\n", "");
    let errors = Rules::check(&text, "t", &tiers())
        .unwrap_err()
        .errors
        .join("\n");
    assert!(
        errors.contains("tiers.low.head_start_secs: needed with order = \"head_start\""),
        "{errors}"
    );
    // An order that does not exist is named with where it is.
    let text = DEFAULT_TOML.replace("order = \"targets\"", "order = \"fastest\"");
    let e = Rules::check(&text, "r.toml", &tiers()).unwrap_err();
    assert!(
        e.errors[0].contains("r.toml") && e.errors[0].contains("order"),
        "{:?}",
        e.errors
    );
    // A tier left out is named, with what it needs.
    let text = DEFAULT_TOML.replace("[tiers.low]\n", "");
    let errors = Rules::check(&text, "t", &tiers())
        .unwrap_err()
        .errors
        .join("\n");
    assert!(errors.contains("tiers.low: missing"), "{errors}");
}

#[test]
fn typos_and_wrong_types_are_named() {
    let e = Rules::parse("[selection]\nstrategy = \"fastest\"\n", "r.toml").unwrap_err();
    assert!(
        e.errors[0].contains("r.toml") && e.errors[0].contains("selection.strategy"),
        "{:?}",
        e.errors
    );
}

#[test]
fn agents_may_take_mail_and_api_contacts_themselves_but_never_calls_or_chats() {
    let rules = Rules::parse(DEFAULT_TOML, "default").unwrap();
    assert!(rules.pull.is_empty(), "push only by default");
    let text = format!("{DEFAULT_TOML}\n[pull]\nchannels = [\"email\", \"api\"]\n");
    let (rules, _) = Rules::check(&text, "t", &tiers()).unwrap();
    assert!(rules.pull.allows(ChannelKind::Email) && rules.pull.allows(ChannelKind::Api));
    assert!(!rules.pull.allows(ChannelKind::Chat));
    let text = format!("{DEFAULT_TOML}\n[pull]\nchannels = [\"email\", \"chat\"]\n");
    let joined = Rules::check(&text, "t", &tiers())
        .unwrap_err()
        .errors
        .join("\n");
    assert!(joined.contains("pull.channels[1]: 'chat'"), "{joined}");
    let text = format!("{DEFAULT_TOML}\n[pull]\nchannels = [\"fax\"]\n");
    assert!(Rules::check(&text, "t", &tiers()).is_err());
}
