//! Calls while the centre is closed, and callbacks: the closed answer in each phone
//! format, a callback that keeps the caller's place at the opening, dialled through the
//! phone system and tried again when nobody answers.

use std::time::Duration;

use serde_json::{json, Value};

use super::{at, Centre, PHONE_SECRET};
use crate::agent_client::{create_agent, Desktop};
use crate::both_backends;
use crate::helpers::{events, Backend};
use crate::phone::{
    fake_phone_system, native_at, now, received, twilio, Received, TWILIO_PUBLIC, TWILIO_SID,
    TWILIO_TOKEN, ZAMMAD_TOKEN,
};

const DAY: i64 = 86_400_000;
const MIN: i64 = 60_000;

/// `days` since the epoch as `YYYY-MM-DD`.
pub fn date(days: i64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp(days * 86_400).unwrap();
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

/// Today (days since the epoch, UTC).
pub fn today() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() / 86_400
}

/// Service sections with one calendar, open around the clock but closed today and
/// tomorrow (so a test crossing midnight still finds it closed): it opens at 00:00 UTC
/// the day after tomorrow. `extra` is appended.
pub fn closed_until_the_day_after_tomorrow(extra: &str) -> String {
    let day = today();
    format!(
        r#"
[calendars.desk]
time_zone = "UTC"
monday = ["00:00-24:00"]
tuesday = ["00:00-24:00"]
wednesday = ["00:00-24:00"]
thursday = ["00:00-24:00"]
friday = ["00:00-24:00"]
saturday = ["00:00-24:00"]
sunday = ["00:00-24:00"]
holidays = ["{}", "{}"]

[[hours]]
calendar = "desk"
{extra}
"#,
        date(day),
        date(day + 1)
    )
}

/// When the desk opens (ms).
pub fn opening() -> i64 {
    (today() + 2) * DAY
}

async fn native(centre: &Centre, body: Value) -> (u16, Value) {
    native_at(&centre.app, &body, PHONE_SECRET, now()).await
}

/// Waits until `check` holds of the interaction (read again every 50 ms, at most 15 s).
async fn until(centre: &Centre, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, i) = centre.app.get(&format!("/api/interactions/{id}")).await;
        if check(&i) {
            return i;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {i}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first command the phone system was sent that `check` holds of (waits at most
/// 15 s).
async fn command(log: &Received, check: impl Fn(&Value) -> bool) -> Value {
    received(log, 1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let sent: Vec<Value> = log
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _, _)| path == "/switchboard/commands")
            .map(|(_, _, body)| serde_json::from_str(body).unwrap())
            .collect();
        if let Some(c) = sent.into_iter().find(|c| check(c)) {
            return c;
        }
        assert!(std::time::Instant::now() < deadline, "no such command");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A centre whose phone system takes commands at `system`, with Zammad and Twilio on.
async fn centre(backend: Backend, service: &str, system: &str) -> Centre {
    let callback_url = format!("{system}/switchboard/commands");
    Centre::start_with(
        backend,
        service,
        9, // no mail in these tests
        &[
            ("SWITCHBOARD__PHONE__CALLBACK_URL", callback_url.as_str()),
            ("SWITCHBOARD__PHONE__ANSWER_WINDOW_MS", "200"),
            ("SWITCHBOARD__PHONE__ZAMMAD_TOKEN", ZAMMAD_TOKEN),
            ("SWITCHBOARD__PHONE__TWILIO_ACCOUNT_SID", TWILIO_SID),
            ("SWITCHBOARD__PHONE__TWILIO_AUTH_TOKEN", TWILIO_TOKEN),
            ("SWITCHBOARD__PHONE__TWILIO_PUBLIC_URL", TWILIO_PUBLIC),
            ("SWITCHBOARD__PHONE__TWILIO_API_URL", system),
            (
                "SWITCHBOARD__PHONE__BLOCKED_NUMBERS",
                "[\"+44 20 7946 0999\"]",
            ),
        ],
    )
    .await
}

both_backends!(a_call_while_closed_hears_the_hours_and_its_callback_keeps_its_place);

async fn a_call_while_closed_hears_the_hours_and_its_callback_keeps_its_place(backend: Backend) {
    let (system, log) = fake_phone_system().await;
    let service =
        closed_until_the_day_after_tomorrow("[callbacks]\nattempts = 2\nretry_after_mins = 10\n");
    let centre = centre(backend, &service, &system).await;

    // A call while closed: told to play the closed message with the opening, then offer
    // a callback.
    let (status, answer) = native(
        &centre,
        json!({ "event": "ringing", "call_id": "night-1", "from": "+49 30 1234567" }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["action"], "closed", "{answer}");
    assert_eq!(answer["then"], "callback");
    assert_eq!(
        answer["message"],
        "Thank you for calling. We are closed now."
    );
    assert_eq!(at(&answer["opens_at"]), opening(), "{answer}");
    assert!(
        answer["hours"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "Monday 00:00-24:00"),
        "{answer}"
    );
    let first = answer["interaction_id"].as_str().unwrap().to_string();

    // The caller takes the offer and hangs up: the call is not a missed one, it waits
    // for the opening as a callback.
    let (status, r) = native(
        &centre,
        json!({ "event": "callback", "call_id": "night-1" }),
    )
    .await;
    assert_eq!((status, &r["recorded"]), (200, &json!(true)), "{r}");
    let (status, r) = native(
        &centre,
        json!({ "event": "ended", "call_id": "night-1", "cause": "normal_clearing" }),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let i = until(&centre, &first, "the hang-up recorded", |i| {
        !events(i, "call_ended").is_empty()
    })
    .await;
    assert_eq!(i["state"], "queued", "{i}");
    assert_eq!(at(&i["opens_at"]), opening());
    let ended = events(&i, "call_ended")[0];
    assert_eq!(ended["data"]["missed"], false, "{ended}");
    assert_eq!(ended["data"]["callback_kept"], true, "{ended}");
    assert_eq!(events(&i, "callback_requested").len(), 1, "{i}");

    // An agent at their desk before the opening is offered nothing.
    let (_, token) = create_agent(&centre.app, json!({ "name": "Ann", "extension": "201" })).await;
    let mut ann = Desktop::available(&centre.app.base, &token).await;
    assert!(
        ann.next_within(Duration::from_millis(800))
            .await
            .filter(|f| f["type"] == "offer")
            .is_none(),
        "nothing is offered while closed"
    );

    // At the opening, a caller of the same tier rings: the callback keeps its place
    // before them.
    centre.advance_to(opening() + MIN).await;
    let later = tokio::spawn({
        let app = crate::helpers::remote_app(&centre.app.base);
        async move {
            native_at(
                &app,
                &json!({ "event": "ringing", "call_id": "day-2", "from": "+49 30 7654321" }),
                PHONE_SECRET,
                now(),
            )
            .await
        }
    });
    let offer = ann.expect("offer").await;
    assert_eq!(offer["interaction"]["id"], first.as_str(), "{offer}");
    let (status, answer) = later.await.unwrap();
    assert_eq!(
        (status, &answer["action"]),
        (200, &json!("queue")),
        "{answer}"
    );
    ann.accept(&offer).await;

    // Taken: the phone system is told to call the customer and connect the agent.
    let dial = command(&log, |c| c["action"] == "callback").await;
    assert_eq!(dial["number"], "+49301234567");
    assert_eq!(dial["extension"], "201");
    assert_eq!(dial["attempt"], 1);
    assert_eq!(dial["callback_id"], first.as_str());

    // Nobody answered: the agent hears so, and a second attempt is booked ten minutes on.
    let (status, r) = native(
        &centre,
        json!({ "event": "callback_result", "callback_id": first, "result": "no_answer" }),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let retry = r["next_attempt"].as_str().expect("a retry").to_string();
    let told = ann.expect("callback_result").await;
    assert_eq!(told["result"], "no_answer");
    assert_eq!(told["next_attempt"], retry.as_str());
    // The same result posted again (the phone system retried) books nothing more.
    let (_, again) = native(
        &centre,
        json!({ "event": "callback_result", "callback_id": first, "result": "no_answer" }),
    )
    .await;
    assert!(again["next_attempt"].is_null(), "{again}");
    ann.send(json!({ "type": "complete", "interaction_id": first, "disposition": "no_answer" }))
        .await;

    // The later caller is next; the retry waits its ten minutes.
    let offer = ann.expect("offer").await;
    assert_ne!(offer["interaction"]["id"], retry.as_str(), "{offer}");
    let day_call = ann.accept(&offer).await;
    ann.send(json!({ "type": "complete", "interaction_id": day_call, "disposition": "resolved" }))
        .await;
    assert!(
        ann.next_within(Duration::from_millis(800))
            .await
            .filter(|f| f["type"] == "offer")
            .is_none(),
        "the retry waits for its time"
    );
    centre.advance(11 * 60).await;
    let offer = ann.expect("offer").await;
    assert_eq!(offer["interaction"]["id"], retry.as_str(), "{offer}");
    ann.accept(&offer).await;
    let second = command(&log, |c| {
        c["action"] == "callback" && c["callback_id"] == retry.as_str()
    })
    .await;
    assert_eq!(second["attempt"], 2);
    assert_eq!(second["number"], "+49301234567");

    // The last attempt fails too: no third is booked (attempts = 2), and the history
    // says so.
    let (_, r) = native(
        &centre,
        json!({ "event": "callback_result", "callback_id": retry, "result": "busy" }),
    )
    .await;
    assert!(r["next_attempt"].is_null(), "{r}");
    let i = until(&centre, &retry, "the result recorded", |i| {
        !events(i, "callback_result").is_empty()
    })
    .await;
    let result = events(&i, "callback_result")[0];
    assert_eq!(result["data"]["attempt"], 2, "{result}");
    assert_eq!(result["data"]["again"], false, "{result}");
    assert!(!i.to_string().contains("7654321"));
}

both_backends!(each_phone_format_hears_the_centre_is_closed_in_its_own_protocol);

async fn each_phone_format_hears_the_centre_is_closed_in_its_own_protocol(backend: Backend) {
    let (system, _log) = fake_phone_system().await;
    let service = closed_until_the_day_after_tomorrow(
        "[closed]\nphone = \"voicemail\"\nphone_message = \"Closed for the holidays.\"\n",
    );
    let centre = centre(backend, &service, &system).await;

    // Twilio: TwiML that says the message and the opening, then records a voicemail
    // posted to the gather URL.
    let call = [
        ("AccountSid", TWILIO_SID),
        ("CallSid", "CA00000000000000000000000000000001"),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", "+14155550100"),
        ("To", "+14155550199"),
    ];
    let (status, twiml) = twilio(&centre.app, "/channels/phone/twilio/voice", &call, None).await;
    assert_eq!(status, 200, "{twiml}");
    assert!(
        twiml.contains("<Say>Closed for the holidays.</Say>"),
        "{twiml}"
    );
    assert!(twiml.contains("<Say>We open again "), "{twiml}");
    assert!(
        twiml.contains(&format!(
            "<Record maxLength=\"120\" playBeep=\"true\" action=\"{TWILIO_PUBLIC}/channels/phone/twilio/gather\"/>"
        )),
        "{twiml}"
    );
    assert!(!twiml.contains("<Enqueue"), "{twiml}");
    // Twilio posts the recording: a voicemail, and a callback booked for the opening.
    let recorded = [
        ("AccountSid", TWILIO_SID),
        ("CallSid", "CA00000000000000000000000000000001"),
        ("RecordingUrl", "https://api.twilio.com/recordings/RE1"),
        ("RecordingDuration", "14"),
    ];
    let (status, twiml) = twilio(
        &centre.app,
        "/channels/phone/twilio/gather",
        &recorded,
        None,
    )
    .await;
    assert!(status == 200 && twiml.contains("<Hangup/>"), "{twiml}");
    let (_, c) = centre.app.get("/api/customers?phone=%2B14155550100").await;
    let (_, h) = centre
        .app
        .get(&format!(
            "/api/customers/{}/history",
            c["id"].as_str().unwrap()
        ))
        .await;
    let kinds: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"voicemail"), "{kinds:?}");
    assert!(kinds.contains(&"callback_booked"), "{kinds:?}");

    // Zammad: its generic CTI takes only reject, which tells the caller busy.
    let (status, r) = crate::phone::zammad(
        &centre.app,
        ZAMMAD_TOKEN,
        &[
            ("event", "newCall"),
            ("direction", "in"),
            ("callId", "z-night-1"),
            ("from", "4930111222"),
            ("to", "4930999"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r, json!({ "action": "reject", "reason": "busy" }));

    // Native: the closed action says what to do after the message.
    let (_, answer) = native(
        &centre,
        json!({ "event": "ringing", "call_id": "n-night-1", "from": "+49 30 5550000" }),
    )
    .await;
    assert_eq!(answer["action"], "closed", "{answer}");
    assert_eq!(answer["then"], "voicemail");
    assert_eq!(answer["message"], "Closed for the holidays.");
}

both_backends!(a_callback_asked_for_is_checked_and_bounded);

async fn a_callback_asked_for_is_checked_and_bounded(backend: Backend) {
    let (system, _log) = fake_phone_system().await;
    let service = closed_until_the_day_after_tomorrow("");
    let centre = centre(backend, &service, &system).await;
    // Over the API, for a customer who asked on the web site.
    let (status, r) = centre
        .app
        .post(
            "/api/callbacks",
            &json!({ "number": "not a number", "idempotency_key": "web-1" }),
        )
        .await;
    assert_eq!((status, r["field"].as_str()), (400, Some("number")), "{r}");
    let (status, r) = centre
        .app
        .post("/api/callbacks", &json!({ "idempotency_key": "web-2" }))
        .await;
    assert!(
        status == 400 && r.to_string().contains("number"),
        "{status} {r}"
    );
    let (status, r) = centre
        .app
        .post(
            "/api/callbacks",
            &json!({ "number": "+49 30 1112223", "idempotency_key": "web-3", "at": "yesterday" }),
        )
        .await;
    assert_eq!((status, r["field"].as_str()), (400, Some("at")), "{r}");
    let (status, r) = centre
        .app
        .post(
            "/api/callbacks",
            &json!({ "number": "+44 20 7946 0999", "idempotency_key": "web-5" }),
        )
        .await;
    assert_eq!(
        (status, r["field"].as_str()),
        (400, Some("number")),
        "blocked: {r}"
    );
    let (status, r) = centre
        .app
        .post(
            "/api/callbacks",
            &json!({ "number": "+49 30 1112223", "idempotency_key": "web-4", "topic": "billing" }),
        )
        .await;
    assert_eq!(status, 201, "{r}");
    let id = r["interaction_id"]
        .as_str()
        .expect("the callback's interaction")
        .to_string();
    let (_, i) = centre.app.get(&format!("/api/interactions/{id}")).await;
    assert_eq!(i["state"], "queued", "{i}");
    assert_eq!(at(&i["opens_at"]), opening(), "booked while closed: {i}");
    // Asked twice (a retried request): one callback.
    let (status, again) = centre
        .app
        .post(
            "/api/callbacks",
            &json!({ "number": "+49 30 1112223", "idempotency_key": "web-4", "topic": "billing" }),
        )
        .await;
    assert!(
        status < 300 && again["interaction_id"] == id.as_str(),
        "{status} {again}"
    );
    // A phone system asking for a call it never reported: nothing to keep.
    let (status, r) = native(
        &centre,
        json!({ "event": "callback", "call_id": "never-rang" }),
    )
    .await;
    assert_eq!((status, &r["recorded"]), (200, &json!(false)), "{r}");
    // A withheld caller has no number to call back: said so, with the field.
    let (_, answer) = native(
        &centre,
        json!({ "event": "ringing", "call_id": "anon-1", "from": "anonymous" }),
    )
    .await;
    assert_eq!(answer["action"], "closed", "{answer}");
    let (status, r) = native(&centre, json!({ "event": "callback", "call_id": "anon-1" })).await;
    assert_eq!((status, r["field"].as_str()), (400, Some("number")), "{r}");
    // ...unless the caller keyed one in.
    let (status, r) = native(
        &centre,
        json!({ "event": "callback", "call_id": "anon-1", "number": "+49 30 4445556" }),
    )
    .await;
    assert_eq!((status, &r["recorded"]), (200, &json!(true)), "{r}");
}
