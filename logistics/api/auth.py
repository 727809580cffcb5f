"""HTTP API: logging in, users and their tokens, sensors' MQTT credentials, the audit log.

Who may call what is decided in logistics.domain.policy (one place), not here.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import g
from flask.views import MethodView

from logistics.api.blueprint import Blueprint
from logistics.api.context import new_uow, settings
from logistics.api.fields import Flag, Timestamp
from logistics.clock import utcnow
from logistics.domain.policy import Role
from logistics.services import audit as audit_service
from logistics.services import auth as auth_service
from logistics.services import mqtt_acl

blp = Blueprint("auth", __name__, url_prefix="/api", description="Logins, users, tokens, audit log")
BLUEPRINTS = [blp]


class LoginSchema(ma.Schema):
    username = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    password = ma.fields.String(
        required=True, load_only=True, validate=ma.validate.Length(min=1, max=1024)
    )


class TokenSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    access_token = ma.fields.String(required=True, metadata={"description": "Shown once"})
    token_type = ma.fields.String(required=True, dump_default="Bearer")
    expires_at = ma.fields.AwareDateTime(required=True)
    username = ma.fields.String(required=True)


class GrantSchema(ma.Schema):
    role = ma.fields.String(required=True, validate=ma.validate.OneOf([r.value for r in Role]))
    store_code = ma.fields.String(
        allow_none=True,
        load_default=None,
        metadata={"description": "Root of the subtree; none: network"},
    )


class UserSchema(ma.Schema):
    username = ma.fields.String(required=True)
    active = ma.fields.Boolean(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    roles = ma.fields.List(ma.fields.Nested(GrantSchema), required=True)


# A grant as the document states it: an admin acts over the whole network and names no store;
# every other role may name the root store of its subtree (none: the network).
GRANT_IN_DOC = {
    "oneOf": [
        {
            "type": "object",
            "description": "An admin grant: the whole network, no store",
            "properties": {
                "role": {"type": "string", "enum": [Role.ADMIN.value]},
                "store_code": {"type": "string", "nullable": True, "enum": [None]},
            },
            "required": ["role"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "description": "Any other role, over a store's subtree or the network",
            "properties": {
                "role": {"type": "string", "enum": [r.value for r in Role if r is not Role.ADMIN]},
                "store_code": {
                    "type": "string",
                    "nullable": True,
                    "pattern": "^[^\\u0000]*$",
                    "description": "Root of the subtree; none: network",
                },
            },
            "required": ["role"],
            "additionalProperties": False,
        },
    ]
}


class NewUserSchema(ma.Schema):
    username = ma.fields.String(
        required=True,
        # \Z: "$" would also take a final newline, which the document's pattern refuses.
        validate=ma.validate.Regexp(r"[A-Za-z0-9_.@-]{1,64}\Z"),
        metadata={"pattern": "^[A-Za-z0-9_.@-]{1,64}$"},
    )
    password = ma.fields.String(
        load_default=None,
        allow_none=True,
        load_only=True,
        validate=ma.validate.Length(min=8, max=1024),
        metadata={"description": "None: a service account (tokens only)"},
    )
    roles = ma.fields.List(ma.fields.Nested(GrantSchema, metadata=GRANT_IN_DOC), required=True)


class UserPatchSchema(ma.Schema):
    active = Flag()
    password = ma.fields.String(load_only=True, validate=ma.validate.Length(min=8, max=1024))
    roles = ma.fields.List(
        ma.fields.Nested(GrantSchema, metadata=GRANT_IN_DOC),
        metadata={"description": "Replaces all the user's roles"},
    )


class NewTokenSchema(ma.Schema):
    ttl_s = ma.fields.Integer(
        strict=True,
        load_default=None,
        allow_none=True,
        validate=ma.validate.Range(min=1, max=366 * 86400),
    )


class TokenInfoSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    expires_at = ma.fields.AwareDateTime(required=True)
    revoked_at = ma.fields.AwareDateTime(allow_none=True)


class MeSchema(ma.Schema):
    username = ma.fields.String(required=True)
    roles = ma.fields.List(ma.fields.Nested(GrantSchema), required=True)


class AuditQuerySchema(ma.Schema):
    actor = ma.fields.String()
    entity = ma.fields.String(metadata={"description": "Table name, e.g. movements"})
    entity_id = ma.fields.String()
    since = Timestamp()
    until = Timestamp()
    # Audit ids are 64-bit: a larger one would reach PostgreSQL and fail there (500).
    before_id = ma.fields.Integer(validate=ma.validate.Range(min=1, max=2**63 - 1))
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=1, max=1000))


class AuditEntrySchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    at = ma.fields.AwareDateTime(required=True)
    actor = ma.fields.String(required=True)
    address = ma.fields.String(allow_none=True)
    method = ma.fields.String(allow_none=True)
    endpoint = ma.fields.String(allow_none=True)
    action = ma.fields.String(required=True)
    entity = ma.fields.String(required=True)
    entity_id = ma.fields.String(allow_none=True)
    before = ma.fields.Dict(allow_none=True)
    after = ma.fields.Dict(allow_none=True)


class MqttCredentialSchema(ma.Schema):
    username = ma.fields.String(required=True)
    kind = ma.fields.String(required=True)
    created_at = ma.fields.AwareDateTime(required=True)


class NewMqttCredentialSchema(ma.Schema):
    username = ma.fields.String(required=True)
    password = ma.fields.String(required=True, metadata={"description": "Shown once"})


def _plain(rows: list[Any], schema: type[ma.Schema]) -> list[dict[str, Any]]:
    """Copy the fields a schema shows out of rows, while their session is still open."""
    names = list(schema._declared_fields)
    return [{name: getattr(row, name) for name in names} for row in rows]


def _token_body(token: str, row: Any, username: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "access_token": token,
        "token_type": "Bearer",
        "expires_at": row.expires_at,
        "username": username,
    }


def _user_body(uow: Any, user: Any) -> dict[str, Any]:
    roles = [
        {"role": role, "store_code": code}
        for role, code in auth_service.grants_of(user, uow.session)
    ]
    return {
        "username": user.username,
        "active": user.active,
        "created_at": user.created_at,
        "roles": roles,
    }


def _role_specs(roles: list[dict[str, Any]]) -> list[str]:
    return [f"{r['role']}:{r['store_code']}" if r.get("store_code") else r["role"] for r in roles]


@blp.route("/auth/login")
class Login(MethodView):
    @blp.arguments(LoginSchema)
    @blp.response(200, TokenSchema)
    @blp.alt_response(401, description="Wrong username or password")
    @blp.alt_response(429, description="Too many attempts from this address")
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Log in with a username and password; get a bearer token."""
        with new_uow() as uow:
            token, row = auth_service.login(
                uow,
                username=args["username"],
                password=args["password"],
                ttl_s=settings().auth_token_ttl_s,
                now=utcnow(),
            )
            uow.commit()
        return _token_body(token, row, args["username"])


@blp.route("/auth/logout")
class Logout(MethodView):
    @blp.response(204)
    @blp.alt_response(401, description="Not logged in")
    def post(self) -> None:
        """Revoke the token this request was made with."""
        with new_uow() as uow:
            auth_service.revoke_token(uow, token_id=g.principal.token_id, now=utcnow())
            uow.commit()


@blp.route("/auth/me")
class Me(MethodView):
    @blp.response(200, MeSchema)
    @blp.alt_response(401, description="Not logged in")
    def get(self) -> dict[str, Any]:
        """Who am I, and which roles over which stores."""
        with new_uow() as uow:
            return _user_body(uow, auth_service.get_user(uow, username=g.principal.username))


@blp.route("/users")
class Users(MethodView):
    @blp.response(200, UserSchema(many=True))
    @blp.alt_response(403, description="Admins only")
    def get(self) -> list[dict[str, Any]]:
        """List users and their roles."""
        with new_uow() as uow:
            return [_user_body(uow, user) for user in auth_service.list_users(uow)]

    @blp.arguments(NewUserSchema)
    @blp.response(201, UserSchema)
    @blp.alt_response(403, description="Admins only")
    @blp.alt_response(409, description="The username is taken")
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Create a user with roles over store subtrees."""
        with new_uow() as uow:
            user = auth_service.create_user(
                uow,
                username=args["username"],
                password=args["password"],
                roles=_role_specs(args["roles"]),
            )
            uow.commit()
            return _user_body(uow, user)


@blp.route("/users/<username>")
class UserItem(MethodView):
    @blp.response(200, UserSchema)
    @blp.alt_response(404, description="No such user")
    def get(self, username: str) -> dict[str, Any]:
        """One user and their roles."""
        with new_uow() as uow:
            return _user_body(uow, auth_service.get_user(uow, username=username))

    @blp.arguments(UserPatchSchema, required=False)
    @blp.response(200, UserSchema)
    @blp.alt_response(404, description="No such user")
    def patch(self, args: dict[str, Any], username: str) -> dict[str, Any]:
        """Disable (revoking every token) or enable a user, set a password or replace roles."""
        with new_uow() as uow:
            roles = _role_specs(args["roles"]) if "roles" in args else None
            user = auth_service.update_user(
                uow,
                username=username,
                active=args.get("active"),
                password=args.get("password"),
                roles=roles,
                now=utcnow(),
            )
            uow.commit()
            return _user_body(uow, user)


@blp.route("/users/<username>/tokens")
class UserTokens(MethodView):
    @blp.response(200, TokenInfoSchema(many=True))
    @blp.alt_response(404, description="No such user")
    def get(self, username: str) -> list[Any]:
        """A user's tokens (never the tokens themselves)."""
        with new_uow() as uow:
            return _plain(auth_service.tokens_of(uow, username=username), TokenInfoSchema)

    @blp.arguments(NewTokenSchema, required=False)
    @blp.response(201, TokenSchema)
    @blp.alt_response(404, description="No such user")
    def post(self, args: dict[str, Any], username: str) -> dict[str, Any]:
        """Issue a token to a user, e.g. a service account; it is shown once."""
        ttl_s = args["ttl_s"] or settings().auth_token_ttl_s
        with new_uow() as uow:
            token, row = auth_service.issue_token_row(
                uow, username=username, ttl_s=ttl_s, now=utcnow()
            )
            uow.commit()
        return _token_body(token, row, username)


@blp.route("/tokens/<int:token_id>")
class TokenItem(MethodView):
    @blp.response(204)
    @blp.alt_response(404, description="No such token")
    def delete(self, token_id: int) -> None:
        """Revoke a token; requests made with it are refused from now on."""
        with new_uow() as uow:
            auth_service.revoke_token(uow, token_id=token_id, now=utcnow())
            uow.commit()


@blp.route("/audit")
class AuditLog(MethodView):
    @blp.arguments(AuditQuerySchema, location="query")
    @blp.response(200, AuditEntrySchema(many=True))
    @blp.alt_response(403, description="Admins only")
    def get(self, args: dict[str, Any]) -> list[Any]:
        """Audit entries, newest first: who changed what, when, from where, before and after."""
        with new_uow() as uow:
            return _plain(audit_service.query_audit(uow, **args), AuditEntrySchema)


@blp.route("/auth/mqtt/credentials")
class MqttCredentials(MethodView):
    @blp.response(200, MqttCredentialSchema(many=True))
    @blp.alt_response(403, description="Admins only")
    def get(self) -> list[Any]:
        """MQTT accounts (sensors and the ingestion), without their passwords."""
        with new_uow() as uow:
            return _plain(mqtt_acl.list_credentials(uow), MqttCredentialSchema)


@blp.route("/auth/mqtt/sensors/<sensor_id>/credentials")
class SensorCredentials(MethodView):
    @blp.response(201, NewMqttCredentialSchema)
    @blp.alt_response(404, description="No such sensor, or it is retired")
    def post(self, sensor_id: str) -> dict[str, str]:
        """Make (or replace) a sensor's MQTT password, shown once; then regenerate broker files."""
        with new_uow() as uow:
            password = mqtt_acl.issue_sensor_credential(uow, sensor_id=sensor_id, now=utcnow())
            uow.commit()
        return {"username": sensor_id, "password": password}
