"""The receiver's settings: Airflow config section ``[crm_sync]`` (or ``AIRFLOW__CRM_SYNC__<KEY>``).

GHL's published Ed25519 key is the default; GHL rotates keys, so it is a setting. The legacy
RSA scheme is off unless ``webhook_legacy_rsa`` is true. A value Airflow cannot read is a
``ConfigError`` naming the setting (the receiver answers 503), never a bare 500.
"""

from __future__ import annotations

from dataclasses import dataclass

# shared/ref/ghl/NOTES.md: GHL's published Ed25519 public key (SPKI DER, base64).
GHL_ED25519_PUBLIC_KEY = "MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg="
# harness/specs/ghl/oauth/WebhookAuthentication.md: the key of the legacy x-wh-signature (RSA-SHA256).
GHL_RSA_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC
Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6
dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB
csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv
uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF
3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU
J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp
IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN
h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC
HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ
PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk
T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ==
-----END PUBLIC KEY-----
"""
SECTION = "crm_sync"


class ConfigError(Exception):
    """A receiver setting is missing or unusable; the message names it as ``[crm_sync] <key>``."""


@dataclass(frozen=True)
class WebhookSettings:
    public_key: str = GHL_ED25519_PUBLIC_KEY  # Ed25519, SPKI DER base64 (or PEM)
    legacy_rsa: bool = False
    rsa_public_key: str = GHL_RSA_PUBLIC_KEY  # PEM
    max_body_bytes: int = 256 * 1024
    tolerance_s: int = 300  # a timestamp further than this from now (either way) is rejected
    trigger_interval_s: float = 2.0  # at most one asset event per location this often
    app_id: str = ""  # GHL marketplace app id; set: an event's appId must be this one
    max_events_per_minute: int = 1200  # per location, stored events; 0: no cap
    max_stored_bytes: int = 256 * 1024 * 1024  # per location, payload bytes in the inbox; 0: no cap
    retention_days: int | None = None  # inbox events older than this go; None: per the profiles' retention_days
    prune_interval_s: int = 600  # the receiver prunes expired inbox events at most this often per process

    @classmethod
    def from_airflow(cls) -> WebhookSettings:
        from airflow.configuration import conf

        default = cls()

        def read(kind: str, key: str, fallback):
            try:
                return getattr(conf, kind)(SECTION, key, fallback=fallback)
            except Exception as exc:  # noqa: BLE001 - AirflowConfigException, ValueError: all name the key
                raise ConfigError(f"[{SECTION}] {key} is not a usable {kind.removeprefix('get') or 'string'}: "
                                  f"{exc.__class__.__name__}") from None

        retention = read("getint", "webhook_retention_days", 0)
        settings = cls(
            public_key=read("get", "webhook_public_key", default.public_key).strip(),
            legacy_rsa=read("getboolean", "webhook_legacy_rsa", default.legacy_rsa),
            rsa_public_key=read("get", "webhook_rsa_public_key", default.rsa_public_key).strip(),
            max_body_bytes=read("getint", "webhook_max_body_bytes", default.max_body_bytes),
            tolerance_s=read("getint", "webhook_tolerance_seconds", default.tolerance_s),
            trigger_interval_s=read("getfloat", "webhook_trigger_interval_seconds", default.trigger_interval_s),
            app_id=read("get", "webhook_app_id", default.app_id).strip(),
            max_events_per_minute=read("getint", "webhook_max_events_per_minute", default.max_events_per_minute),
            max_stored_bytes=read("getint", "webhook_max_stored_bytes", default.max_stored_bytes),
            retention_days=retention or None,
            prune_interval_s=read("getint", "webhook_prune_interval_seconds", default.prune_interval_s),
        )
        settings.check_numbers()
        return settings

    def check_numbers(self) -> None:
        """ConfigError for a size, cap or interval out of range, naming its setting."""
        for key, value, least in (("webhook_max_body_bytes", self.max_body_bytes, 1),
                                  ("webhook_tolerance_seconds", self.tolerance_s, 1),
                                  ("webhook_max_events_per_minute", self.max_events_per_minute, 0),
                                  ("webhook_max_stored_bytes", self.max_stored_bytes, 0),
                                  ("webhook_retention_days", self.retention_days or 0, 0),
                                  ("webhook_prune_interval_seconds", self.prune_interval_s, 1)):
            if value < least:
                raise ConfigError(f"[{SECTION}] {key} is {value}; it must be at least {least}")
