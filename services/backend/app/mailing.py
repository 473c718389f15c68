"""Outgoing mail over SMTP (stdlib smtplib), used for password-reset messages.

Called from a background task after the HTTP response is sent, so neither the
response time nor an SMTP failure tells the caller whether an account exists.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage

from app.settings import Settings

log = logging.getLogger(__name__)


def send_mail(settings: Settings, *, to: str, subject: str, body: str) -> None:
    """Deliver one plain-text message; raises smtplib/OS errors to the caller."""
    if settings.smtp_host is None:
        raise RuntimeError("mail is not configured (SMTP_HOST is not set)")
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP(
        settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds
    ) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username and settings.smtp_password is not None:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        smtp.send_message(message)


def send_password_reset(settings: Settings, *, to: str, token: str) -> None:
    """Mail a reset token; failures are logged (without the token), never raised."""
    minutes = settings.password_reset_expire_minutes
    body = (
        "Someone asked to reset the password of your Lumina Todo account.\n\n"
        f"Your reset code (valid for {minutes} minutes, usable once):\n\n{token}\n\n"
        "Enter it with your new password in the app. If you did not ask for this, "
        "ignore this message: your password stays as it is.\n"
    )
    try:
        send_mail(settings, to=to, subject="Reset your Lumina Todo password", body=body)
    except (OSError, smtplib.SMTPException) as exc:
        # The address stays out of the log: it is personal data, and the log is not.
        log.error(
            "password-reset mail via %s:%d failed: %s",
            settings.smtp_host,
            settings.smtp_port,
            exc,
        )
    else:
        log.info("password-reset mail sent")
