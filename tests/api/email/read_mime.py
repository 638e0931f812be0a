# Reads one message from standard input with Python's standard `email` package (a MIME
# parser that is not Switchboard's own) and prints, as JSON, what a mail client would
# show of it: its MIME version and type, its subject decoded and as written, its text
# and HTML bodies with their charsets and transfer encodings, and every defect found.
import email
import json
import sys
from email import policy

raw = sys.stdin.buffer.read()
message = email.message_from_bytes(raw, policy=policy.default)
as_written = email.message_from_bytes(raw, policy=policy.compat32)


def body(kind):
    part = message.get_body(preferencelist=(kind,))
    if part is None:
        return None
    return {
        "content_type": part.get_content_type(),
        "charset": part.get_param("charset"),
        "transfer_encoding": part.get("Content-Transfer-Encoding"),
        "content": part.get_content(),
    }


print(json.dumps({
    "mime_version": message.get("MIME-Version"),
    "content_type": message.get_content_type(),
    "subject": str(message["Subject"]),
    "subject_as_written": as_written["Subject"],
    "plain": body("plain"),
    "html": body("html"),
    "defects": [type(d).__name__ for part in message.walk() for d in part.defects],
    "to": message.get_all("To"),
    "cc": message.get_all("Cc"),
    "attachments": [
        {"filename": part.get_filename(), "content_type": part.get_content_type(),
         "content": part.get_content() if part.get_content_maintype() == "text" else None,
         "size": len(part.get_payload(decode=True) or b"")}
        for part in message.iter_attachments()
    ] if message.is_multipart() else [],
}))
