"""Provider keys per organisation, encrypted with the SecretBox before they reach a row."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from storage.crypto import SecretBox, last4
from storage.models import Credential


def put(
    s: Session,
    *,
    org_id: int,
    provider: str,
    secret: str,
    box: SecretBox,
    actor: str,
    now: datetime,
) -> Credential:
    cred = s.exec(
        select(Credential).where(Credential.org_id == org_id, Credential.provider == provider)
    ).first()
    if cred is None:
        cred = Credential(
            org_id=org_id,
            provider=provider,
            encrypted_secret="",
            last4="",
            created_by=actor,
            created_at=now,
            updated_at=now,
        )
    cred.encrypted_secret = box.encrypt(secret)
    cred.last4 = last4(secret)
    cred.updated_at = now
    s.add(cred)
    s.flush()
    return cred


def get_secret(s: Session, *, org_id: int, provider: str, box: SecretBox) -> str | None:
    cred = s.exec(
        select(Credential).where(Credential.org_id == org_id, Credential.provider == provider)
    ).first()
    return box.decrypt(cred.encrypted_secret) if cred else None


def list_for(s: Session, *, org_id: int) -> list[Credential]:
    return list(s.exec(select(Credential).where(Credential.org_id == org_id)))


def delete(s: Session, *, org_id: int, provider: str) -> bool:
    cred = s.exec(
        select(Credential).where(Credential.org_id == org_id, Credential.provider == provider)
    ).first()
    if cred:
        s.delete(cred)
        return True
    return False
