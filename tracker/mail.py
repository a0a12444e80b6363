"""Email: build the digest message (text + HTML alternatives, inline chart) and send it over SMTP.

The only module that imports smtplib. The password is read from auth.json or the
`TRACKER_SMTP_PASSWORD` environment variable, never from a command-line option (visible in `ps`
and shell history), and no message or log line here ever contains it.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.errors import MessageError
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import quote

from tracker.config import setting
from tracker.errors import ConfigError, MailError

log = logging.getLogger(__name__)

SECURITY = ("starttls", "ssl", "plain")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "plain": 25}
DEFAULT_TIMEOUT = 30.0
CHART_CID = "trend-chart"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
# RFC 5322 dot-atom for the local part (no quoted strings: few servers take them, and nobody needs them
# for a digest) and RFC 1035 host-name labels for the domain; RFC 5321 caps the lengths.
LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
DOMAIN_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str
    sender: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)  # repr=False: never printed by accident
    timeout: float = DEFAULT_TIMEOUT


def check_address(text: str, what: str = "email address") -> str:
    """A plain ASCII `name@example.org`, stripped of surrounding blanks, or a one-line ConfigError saying why.

    Used by `subscribe`, `--to` and `--from`, and again for every stored recipient at send time, so a
    row written before these rules (or by hand) fails alone instead of stopping the whole run.
    """
    value = text.strip(" \t\r\n")
    bad = next((c for c in value if unicodedata.category(c)[0] in "CZ" and c != " "), None)
    if bad is not None:
        # U+0085, U+2028 and friends: the email library refuses them in a header at send time.
        raise ConfigError(f"{what} {text!r} contains a line break or control character U+{ord(bad):04X}")
    if not value.isascii():
        raise ConfigError(f"{what} {text!r} has non-ASCII characters; only plain ASCII addresses can be sent")
    if value.startswith("<") and value.endswith(">"):
        raise ConfigError(f"{what} {text!r}: give the bare address, without the <>")
    local, at, domain = value.partition("@")
    if not at:
        raise ConfigError(f"{what} {text!r} is not a valid email address (expected name@example.org)")
    if "@" in domain:
        raise ConfigError(f"{what} {text!r} must hold exactly one @")
    if not local:
        raise ConfigError(f"{what} {text!r} has nothing before the @")
    labels = domain.split(".")
    if any(not label for label in labels) and len(labels) > 1:
        raise ConfigError(f"{what} {text!r}: the domain {domain!r} has an empty part")
    for label in labels:
        if label and not DOMAIN_LABEL.fullmatch(label):
            raise ConfigError(f"{what} {text!r}: the domain part {label!r} is not a host name")
    if not LOCAL_PART.fullmatch(local) or len(labels) < 2 or len(local) > 64 or len(value) > 254:
        raise ConfigError(f"{what} {text!r} is not a valid email address (expected name@example.org)")
    return value


def smtp_settings(
    auth: dict[str, str],
    *,
    host: str | None = None,
    port: int | None = None,
    security: str | None = None,
    user: str | None = None,
    sender: str | None = None,
) -> SmtpSettings:
    """Resolve SMTP settings: option, then auth.json (`smtp_host`, ...), then `TRACKER_SMTP_*`."""
    resolved_host = setting("smtp_host", host, auth)
    if not resolved_host:
        raise ConfigError("no SMTP server: pass --smtp-host, run `tracker auth`, or set TRACKER_SMTP_HOST")
    mode = (setting("smtp_security", security, auth) or "starttls").lower()
    if mode not in SECURITY:
        raise ConfigError(f"smtp_security {mode!r}: expected one of {', '.join(SECURITY)}")
    port_text = setting("smtp_port", str(port) if port else None, auth) or str(DEFAULT_PORTS[mode])
    try:
        resolved_port = int(port_text)
    except ValueError:
        raise ConfigError(f"smtp_port {port_text!r} is not a number") from None
    timeout_text = setting("smtp_timeout", None, auth) or str(DEFAULT_TIMEOUT)
    try:
        timeout = float(timeout_text)
    except ValueError:
        raise ConfigError(f"smtp_timeout {timeout_text!r} is not a number of seconds") from None
    if not 0 < timeout <= 3600:  # also refuses nan
        raise ConfigError(f"smtp_timeout {timeout_text!r}: expected seconds between 0 and 3600")
    resolved_user = setting("smtp_user", user, auth)
    from_address = setting("smtp_from", sender, auth) or resolved_user
    if not from_address:
        raise ConfigError("no sender address: pass --from, run `tracker auth`, or set TRACKER_SMTP_FROM")
    check_address(from_address, "sender")
    # The password has no option on purpose: auth.json (mode 600) or the environment only.
    password = setting("smtp_password", None, auth)
    for name, secret in (("smtp_user", resolved_user), ("smtp_password", password)):
        # smtplib encodes AUTH as ASCII: caught here, before any digest is marked as being sent, and
        # without echoing the value.
        if secret and not secret.isascii():
            raise ConfigError(f"{name} has non-ASCII characters, which SMTP login (smtplib) cannot send")
    if resolved_user and password and mode == "plain" and resolved_host not in LOOPBACK:
        raise ConfigError(
            f"refusing to send the SMTP password unencrypted to {resolved_host}; use --starttls or --ssl"
        )
    return SmtpSettings(resolved_host, resolved_port, mode, from_address, resolved_user, password, timeout)


def build_message(
    *,
    sender: str,
    recipient: str | None,
    subject: str,
    text: str,
    html: str,
    chart_png: bytes | None,
    message_id: str | None = None,
) -> EmailMessage:
    """multipart/alternative (text, then HTML); the chart rides as a related inline image of the HTML."""
    message = EmailMessage()
    try:
        message["Subject"] = subject
        message["From"] = sender
        if recipient:
            message["To"] = recipient
            message["List-Unsubscribe"] = list_unsubscribe(sender, recipient)
    except (ValueError, MessageError) as exc:  # check_address keeps these out; one line if one slips by
        raise MailError(f"cannot address a message from {sender!r} to {recipient!r}: {exc}") from None
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id or make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies to a digest
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    if chart_png is not None:
        html_part = message.get_body(preferencelist=("html",))
        if not isinstance(html_part, EmailMessage):
            raise TypeError("the HTML alternative went missing")  # cannot happen: added just above
        html_part.add_related(
            chart_png, "image", "png", cid=f"<{CHART_CID}>", filename="trend.png", disposition="inline"
        )
    return message


def list_unsubscribe(sender: str, recipient: str) -> str:
    """RFC 2369 List-Unsubscribe: a mailto to the sender whose subject names the reader.

    A CLI has no web endpoint, so no RFC 8058 one-click (List-Unsubscribe-Post needs an HTTPS URL):
    the request reaches the person who runs `tracker unsubscribe`.
    """
    return f"<mailto:{sender}?subject={quote(f'unsubscribe {recipient}', safe='')}>"


def new_message_id(sender: str) -> str:
    return f"<{uuid.uuid4().hex}@{sender.rpartition('@')[2] or 'tracker.invalid'}>"


def send(message: EmailMessage, smtp: SmtpSettings, on_accepted: Callable[[], None] | None = None) -> None:
    """Deliver one message; every failure (refused, timeout, bad login, TLS) becomes a one-line MailError.

    :param on_accepted: called as soon as the server answers the message's DATA with 250, before QUIT,
        so the caller can record it while the connection is still open. From then on the message is
        delivered: a refused QUIT or a dropped connection is logged, never raised. What `on_accepted`
        raises is passed on (after QUIT).
    """
    where = f"{smtp.host}:{smtp.port}"
    recipient = str(message.get("To", "?"))
    try:
        conn = _connect(smtp)
        try:
            if smtp.security == "starttls":
                conn.starttls(context=ssl.create_default_context())
            if smtp.user and smtp.password:
                conn.login(smtp.user, smtp.password)
            refused = conn.send_message(message)  # returns once DATA is answered with 250
        except BaseException:
            conn.close()
            raise
        if refused:  # only some of several envelope recipients; each digest has one
            conn.close()
            raise MailError(f"{where} refused {', '.join(refused)}")
    except MailError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"{where}: login as {smtp.user} failed ({exc.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = "; ".join(f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in exc.recipients.items())
        raise MailError(f"{where} refused the recipient: {codes}") from None
    except smtplib.SMTPResponseException as exc:
        raise MailError(
            f"{where} refused the message to {recipient}: {exc.smtp_code} {_text(exc.smtp_error)}"
        ) from None
    except TimeoutError:  # socket.timeout is an alias of it
        raise MailError(f"{where}: timed out after {smtp.timeout:g} s") from None
    except smtplib.SMTPServerDisconnected as exc:
        # smtplib turns a read timeout into "Connection unexpectedly closed: timed out".
        if "timed out" in str(exc):
            raise MailError(f"{where}: timed out after {smtp.timeout:g} s") from None
        raise MailError(f"{where}: the server closed the connection ({exc})") from None
    except ssl.SSLError as exc:
        raise MailError(f"{where}: TLS failed: {exc.reason or exc}") from None
    except UnicodeError:  # smtplib encodes commands as ASCII; smtp_settings and check_address keep this out
        raise MailError(f"{where}: a login or address with non-ASCII characters cannot be sent") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(f"{where}: {exc.__class__.__name__}: {exc}") from None
    log.info("sent %s to %s via %s", message["Message-ID"], recipient, where)
    try:
        if on_accepted is not None:
            on_accepted()
    finally:
        _quit(conn, where)


def _connect(smtp: SmtpSettings) -> smtplib.SMTP:
    if smtp.security == "ssl":
        return smtplib.SMTP_SSL(
            smtp.host, smtp.port, timeout=smtp.timeout, context=ssl.create_default_context()
        )
    return smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)


def _quit(conn: smtplib.SMTP, where: str) -> None:
    """Say goodbye after the message was accepted: any answer but 221 is only worth a log line."""
    try:
        code, reply = conn.docmd("QUIT")
        if code != 221:
            log.warning("%s answered QUIT with %s %s after accepting the message", where, code, _text(reply))
    except (smtplib.SMTPException, OSError) as exc:
        log.warning("%s: QUIT failed after the message was accepted (%s)", where, exc)
    finally:
        conn.close()


def _text(value: bytes | str) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())
