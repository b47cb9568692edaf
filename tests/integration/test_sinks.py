"""The local outbox page (devstack/sinks.py) shows what notify sent as text: markup in a subject, a body, an address
or a webhook's name is escaped, over the real SMTP and HTTP receivers."""

import html
import smtplib
from email.message import EmailMessage
from urllib.parse import quote

import httpx
import pytest

from devstack import servers
from devstack.sinks import Sinks

SCRIPT = "<script>alert('outbox')</script>"
IMAGE = '"><img src=x onerror=alert(1)>'
NAME = "<b onmouseover=alert(2)>head"  # a webhook's name is a path segment: no slash


@pytest.fixture
def sinks(tmp_path):
    s = Sinks(*servers.free_ports(2), directory=tmp_path / "outbox")
    s.start()
    yield s
    s.stop()


def test_the_outbox_page_escapes_subjects_bodies_addresses_and_names(sinks):
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "platform@example.org", "liwei@example.com", f"Appeal {SCRIPT}"
    mail.set_content(f"Your appeal {IMAGE} was routed.")
    with smtplib.SMTP("127.0.0.1", sinks.smtp_port, timeout=10) as smtp:
        smtp.send_message(mail)
    base = f"http://127.0.0.1:{sinks.http_port}"
    sms = {"to": f"+86138{IMAGE}", "template": "link", "language": "zh", "text": f"Link {SCRIPT}"}
    assert httpx.post(f"{base}/sms", json=sms).status_code == 200
    wechat = {"touser": "o-open-id", "data": {"first": {"value": SCRIPT}, "remark": {"value": IMAGE}}}
    assert httpx.post(f"{base}/wechat", json=wechat).status_code == 200
    assert httpx.post(f"{base}/webhook/{quote(NAME, safe='')}", json={"event": {"type": IMAGE}}).status_code == 200

    page = httpx.get(base + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    for markup in ("<script", "<img", "<b ", "onerror=alert(1)>"):
        assert markup not in text, f"{markup} reached the page unescaped"
    shown = html.unescape(text)
    assert f"Appeal {SCRIPT}" in shown, "the subject is shown, as text"
    assert f"Your appeal {IMAGE} was routed." in shown, "the body too"
    assert "liwei@example.com" in shown and f"+86138{IMAGE}" in shown, "and the addresses"
    assert f"Link {SCRIPT}" in shown and NAME in shown and IMAGE in shown
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"], "no script runs even if one slips by"
    assert text.count("<tr>") == 5, "a header and one row per message"


def test_what_an_earlier_run_kept_is_shown_escaped_too(tmp_path):
    directory = tmp_path / "outbox"
    directory.mkdir()
    (directory / "email.jsonl").write_text(
        '{"kind": "email", "to": ["a@example.org"], "subject": "' + SCRIPT + '", "body": "b", "at": 1}\n'
        '{"kind": "email", "to": ["a@exa'  # the last line of a receiver killed while writing it
    )
    sinks = Sinks(*servers.free_ports(2), directory=directory)
    sinks.start()
    try:
        page = httpx.get(f"http://127.0.0.1:{sinks.http_port}/").text
    finally:
        sinks.stop()
    assert "<script" not in page and html.escape(SCRIPT, quote=True) in page
