"""Email: build the digest message (text + HTML alternatives, inline chart) and send it over SMTP.

The only module that imports smtplib. The password is read from auth.json or the
`TRACKER_SMTP_PASSWORD` environment variable, never from a command-line option (visible in `ps`
and shell history), and no message or log line here ever contains it.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import uuid
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from tracker.config import setting
from tracker.errors import ConfigError, MailError

log = logging.getLogger(__name__)

SECURITY = ("starttls", "ssl", "plain")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "plain": 25}
DEFAULT_TIMEOUT = 30.0
CHART_CID = "trend-chart"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


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
    """A plain `name@domain` address, or ConfigError naming it."""
    value = text.strip()
    try:
        address = Address(addr_spec=value)
    except (ValueError, IndexError, TypeError):
        address = None
    if address is None or not address.username or "." not in address.domain or " " in value:
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
    message["Subject"] = subject
    message["From"] = sender
    if recipient:
        message["To"] = recipient
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id or make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies to a digest
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    if chart_png is not None:
        html_part = message.get_body(preferencelist=("html",))
        if not isinstance(html_part, EmailMessage):
            raise TypeError("the HTML alternative went missing")  # cannot happen: added just above
        html_part.add_related(chart_png, "image", "png", cid=f"<{CHART_CID}>", filename="trend.png",
                              disposition="inline")  # fmt: skip
    return message


def new_message_id(sender: str) -> str:
    return f"<{uuid.uuid4().hex}@{sender.rpartition('@')[2] or 'tracker.invalid'}>"


def send(message: EmailMessage, smtp: SmtpSettings) -> None:
    """Deliver one message; every failure (refused, timeout, bad login, TLS) becomes a one-line MailError."""
    where = f"{smtp.host}:{smtp.port}"
    recipient = str(message.get("To", "?"))
    try:
        if smtp.security == "ssl":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout, context=ssl.create_default_context()
            )
        else:
            conn = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        with conn:
            if smtp.security == "starttls":
                conn.starttls(context=ssl.create_default_context())
            if smtp.user and smtp.password:
                conn.login(smtp.user, smtp.password)
            refused = conn.send_message(message)
            if refused:
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
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(f"{where}: {exc.__class__.__name__}: {exc}") from None
    log.info("sent %s to %s via %s", message["Message-ID"], recipient, where)


def _text(value: bytes | str) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())
