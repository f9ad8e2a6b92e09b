"""Tables. Alembic migrations (in `migrations/`) create and change them; keep both in step."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text, text

metadata = MetaData()

requests = Table(
    "requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("at", Float, nullable=False, doc="epoch seconds when the request arrived"),
    Column("route", String(32), nullable=False),
    Column("path", String(128), nullable=False),
    Column("model", String(128)),
    Column("credential", String(128)),
    Column("status", Integer, nullable=False),
    Column("stream", Boolean, nullable=False, default=False),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("cached_tokens", Integer),
    Column("ttfb_ms", Float),
    Column("latency_ms", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Column("decision", Text, doc="JSON: the routing explanation of every attempt"),
    Column("error", Text),
    Column("profile", String(64), doc="the routing profile"),
    Column("scenario", String(32), doc="default | background | think | long_context | …"),
    Column("sent_model", String(128), doc="the model sent upstream (model: the one asked for)"),
    Column("warmup", Boolean, nullable=False, default=False, doc="quotapool's own warmup"),
    Column("client_key", String(128), doc="the name of the client key it came with"),
    Index("ix_requests_at", "at"),
    Index(
        "ix_requests_client_key_at",
        "client_key",
        "at",
        sqlite_where=text("client_key IS NOT NULL"),
        postgresql_where=text("client_key IS NOT NULL"),
    ),
    Column("trace_id", String(32), doc="its OpenTelemetry trace, when [tracing] is on"),
    Column("fallback", String(128), doc="the fallback model that served it (model: the one asked)"),
)

COLUMNS = tuple(c.name for c in requests.columns if c.name != "id")

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("identity", String(256), unique=True, doc="codex: chatgpt account id + user id"),
    Column("email", String(256)),
    Column("plan", String(32)),
    Column("account_id", String(128), doc="codex: sent as chatgpt-account-id"),
    Column("base_url", String(512)),
    Column("models", Text, doc="JSON list; empty = any model"),
    Column("weight", Float, nullable=False, default=1.0),
    Column("priority", Integer, nullable=False, default=0),
    Column("policy", String(16), nullable=False, default="normal"),
    Column("status", String(32), nullable=False, default="active"),
    Column("status_reason", Text),
    Column("secret", Text, nullable=False, doc="Fernet token of the JSON secrets; never plaintext"),
    Column("proxy", Text, doc='Fernet token of its egress proxy URL or "direct"; NULL: default'),
    Column("expires_at", Float, doc="access token expiry"),
    Column("last_refresh", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

client_keys = Table(
    "client_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column(
        "hash", String(64), nullable=False, unique=True, doc="SHA-256 of the key; never the key"
    ),
    Column("prefix", String(16), nullable=False, doc="its first characters, to tell keys apart"),
    Column("models", Text, doc="JSON list of allowed models; empty = any"),
    Column("profile", String(64)),
    Column("limits", Text, doc='JSON list like ["requests=1000/day"]'),
    Column("expires_at", Float),
    Column("revoked_at", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column(
        "revision",
        Integer,
        nullable=False,
        server_default="1",
        doc="bumped by every change: the keys' version is the sum of these",
    ),
)

admin_token = Table(
    "admin_token",
    metadata,
    Column("id", Integer, primary_key=True, doc="always 1: there is one admin token"),
    Column("hash", String(64), nullable=False, doc="SHA-256 of the token, never it"),
    Column("created_at", Float, nullable=False),
)

routing_overrides = Table(
    "routing_overrides",
    metadata,
    Column("profile", String(64), primary_key=True),
    Column("strategy", String(64), nullable=False, doc="over the configuration's, until cleared"),
    Column("updated_at", Float, nullable=False),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(256), nullable=False, doc="dashboard, admin token or cli, and where"),
    Column("action", String(64), nullable=False, doc="account.pause, key.create, routing.set…"),
    Column("target", String(256), nullable=False, doc="the account, key or profile changed"),
    Column("before", Text, doc="JSON: what it was (never a secret)"),
    Column("after", Text, doc="JSON: what it became (never a secret)"),
    Index("ix_audit_at", "at"),
)
"""Every change made through the admin API, the dashboard or the CLI."""

conversations = Table(
    "conversations",
    metadata,
    Column(
        "key",
        String(256),
        primary_key=True,
        doc="bound:<affinity key> | owned:<response id or turn state> (hashed when long)",
    ),
    Column("credential", String(64), nullable=False, doc="the credential id"),
    Column("expires_at", Float, nullable=False),
    Index("ix_conversations_expires_at", "expires_at"),
)

response_items = Table(
    "response_items",
    metadata,
    Column("response_id", String(128), primary_key=True),
    Column(
        "items",
        Text,
        nullable=False,
        doc="JSON: its turn's input (after what `parent` holds), then its output",
    ),
    Column("expires_at", Float, nullable=False),
    Column("parent", String(128), doc="the response it continued (its conversation so far)"),
    Index("ix_response_items_expires_at", "expires_at"),
)

usage_history = Table(
    "usage_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("credential", String(128), nullable=False),
    Column("at", Float, nullable=False),
    Column("window", String(64), nullable=False, doc="primary | secondary | additional:<name>"),
    Column("used_percent", Float, nullable=False),
    Column("resets_at", Float),
    Column("source", String(32), nullable=False, doc="headers | poll | stream | error"),
    Index("ix_usage_history_credential_at", "credential", "at"),
)
