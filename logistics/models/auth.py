"""Models: users, role grants over store subtrees, bearer tokens, MQTT credentials, audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DDL, JSON, BigInteger, ForeignKey, Index, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from logistics.db import Base, BigIntPK


class User(Base):
    """A person (or a service account) who may call the API."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # argon2id hash; None for a service account that only ever uses issued tokens.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime]

    grants: Mapped[list[RoleGrant]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        order_by="RoleGrant.id",
        lazy="selectin",
    )


class RoleGrant(Base):
    """A role a user holds over a store's subtree (store None: over the whole network)."""

    __tablename__ = "role_grants"
    __table_args__ = (UniqueConstraint("user_id", "role", "store_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))

    user: Mapped[User] = relationship(back_populates="grants")


class ApiToken(Base):
    """A bearer token; only its SHA-256 is kept, so a leaked table gives no usable token."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class MqttCredential(Base):
    """MQTT login of one sensor (username = sensor_id) or of a service (the ingestion)."""

    __tablename__ = "mqtt_credentials"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "sensor" or "ingest"
    # Mosquitto's own PBKDF2-SHA512 format ("$7$..."), ready for its password file.
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime]


class AuditEntry(Base):
    """One change to one row, written in the transaction that made it; never updated or deleted."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_entity", "entity", "entity_id"),
        Index("ix_audit_log_actor_at", "actor", "at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str | None] = mapped_column(String(8))
    endpoint: Mapped[str | None] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(8))  # insert, update, delete
    entity: Mapped[str] = mapped_column(String(64))  # table name
    entity_id: Mapped[str | None] = mapped_column(String(128))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


# On PostgreSQL the database itself refuses to change or delete audit rows, whatever the client.
# Migrations must run these too (op.execute): Alembic's autogenerate does not see triggers.
AUDIT_APPEND_ONLY_SQL = (
    "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
)
for _statement in AUDIT_APPEND_ONLY_SQL:
    event.listen(
        AuditEntry.__table__, "after_create", DDL(_statement).execute_if(dialect="postgresql")
    )


class AccessEpoch(Base):
    """One counter raised in every transaction that revokes a token or changes a user's access.

    Each web worker reads it on every request (a primary-key lookup) and forgets the tokens it
    cached when it moved, so a revocation holds at once on every worker (issue 12).
    """

    __tablename__ = "access_epoch"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
