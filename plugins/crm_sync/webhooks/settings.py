"""The receiver's settings: Airflow config section ``[crm_sync]`` (or ``AIRFLOW__CRM_SYNC__<KEY>``).

GHL's published Ed25519 key is the default; GHL rotates keys, so it is a setting. The legacy
RSA scheme is off unless ``webhook_legacy_rsa`` is true.
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


@dataclass(frozen=True)
class WebhookSettings:
    public_key: str = GHL_ED25519_PUBLIC_KEY  # Ed25519, SPKI DER base64 (or PEM)
    legacy_rsa: bool = False
    rsa_public_key: str = GHL_RSA_PUBLIC_KEY  # PEM
    max_body_bytes: int = 256 * 1024
    tolerance_s: int = 300  # a timestamp further than this from now (either way) is rejected
    trigger_interval_s: float = 2.0  # at most one asset event per location this often

    @classmethod
    def from_airflow(cls) -> WebhookSettings:
        from airflow.configuration import conf

        default = cls()
        return cls(
            public_key=conf.get(SECTION, "webhook_public_key", fallback=default.public_key),
            legacy_rsa=conf.getboolean(SECTION, "webhook_legacy_rsa", fallback=default.legacy_rsa),
            rsa_public_key=conf.get(SECTION, "webhook_rsa_public_key", fallback=default.rsa_public_key),
            max_body_bytes=conf.getint(SECTION, "webhook_max_body_bytes", fallback=default.max_body_bytes),
            tolerance_s=conf.getint(SECTION, "webhook_tolerance_seconds", fallback=default.tolerance_s),
            trigger_interval_s=conf.getfloat(SECTION, "webhook_trigger_interval_seconds",
                                             fallback=default.trigger_interval_s),
        )
