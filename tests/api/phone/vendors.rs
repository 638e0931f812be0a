//! Webhooks signed by the vendor's own code: Twilio's Python SDK (`twilio`) signs each
//! request here, and its own `RequestValidator` says which it would accept; Switchboard
//! must accept exactly those. Run by `bash .ci/run`, which installs the SDK and names its
//! Python in `SWITCHBOARD_TEST_PYTHON`.

use std::io::Write;
use std::process::{Command, Stdio};

use super::*;

/// Runs `script` in the Python that has Twilio's SDK, with `input` on its standard input;
/// answers what it printed.
fn python(script: &str, input: &Value) -> String {
    let python = std::env::var("SWITCHBOARD_TEST_PYTHON").expect(
        "SWITCHBOARD_TEST_PYTHON names a Python with Twilio's SDK (bash .ci/run sets it up)",
    );
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// For each URL, the signature Twilio's SDK computes for `params` there, and whether its
/// validator accepts that signature for a request to `public` (what Switchboard's
/// configured public URL and the path make).
fn sdk_signatures(public: &str, urls: &[String], params: &[(&str, &str)]) -> Vec<(String, bool)> {
    const SCRIPT: &str = r#"
import json, sys
from twilio.request_validator import RequestValidator
d = json.load(sys.stdin)
v = RequestValidator(d["token"])
out = []
for url in d["urls"]:
    sig = v.compute_signature(url, d["params"])
    out.append([sig, v.validate(d["public"], d["params"], sig)])
print(json.dumps(out))
"#;
    let params: serde_json::Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let out = python(
        SCRIPT,
        &json!({ "token": TWILIO_TOKEN, "urls": urls, "params": params, "public": public }),
    );
    serde_json::from_str::<Vec<(String, bool)>>(out.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python with Twilio's SDK: bash .ci/run installs it"]
async fn twilio_webhooks_are_accepted_exactly_as_twilios_own_validator_accepts_them() {
    let (url, _) = phone_system(0).await;
    let app = app(Backend::Sqlite, &url, 0).await;
    let path = "/channels/phone/twilio/voice";
    let host = TWILIO_PUBLIC.trim_start_matches("https://");
    // The URL forms a request may be signed over: Twilio signs some with the default
    // port and some without; any other port, scheme or host is another URL.
    let urls: Vec<String> = [
        format!("https://{host}{path}"),
        format!("https://{host}:443{path}"),
        format!("https://{host}:8443{path}"),
        format!("http://{host}{path}"),
        format!("https://{host}:80{path}"),
        format!("https://other.example.com{path}"),
        format!("https://{host}{path}?x=1"),
    ]
    .into_iter()
    .collect();
    let mut accepted = 0;
    for (i, url) in urls.iter().enumerate() {
        let sid = format!("CA{i:032}");
        let params = [
            ("AccountSid", TWILIO_SID),
            ("CallSid", sid.as_str()),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
            ("From", "+14155550110"),
            ("To", "+14155550199"),
        ];
        let public = format!("{TWILIO_PUBLIC}{path}");
        let (signature, vendor_accepts) =
            sdk_signatures(&public, std::slice::from_ref(url), &params).remove(0);
        let (status, body) = twilio(&app, path, &params, Some(signature)).await;
        let expected = if vendor_accepts { 200 } else { 401 };
        assert_eq!(status, expected, "signed over {url}: {body}");
        accepted += usize::from(vendor_accepts);
    }
    assert_eq!(
        accepted, 2,
        "the validator takes the URL with and without its default port, nothing else"
    );
    app.stop().await;
}
