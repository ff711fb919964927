"""Admin authentication use cases: users, sessions, throttled logins, API credentials."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from herald.auth import devices, repository
from herald.auth.domain import (
    API_KEY_PREFIX,
    Role,
    Scope,
    SessionRecord,
    Username,
    UserRecord,
    check_new_password,
    digest,
    generate_password,
    login_delay,
    looks_like_api_key,
    new_api_key,
    new_session_token,
    username_key,
)
from herald.auth.passwords import Passwords
from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Conflict, NotFound, RateLimited, Unauthorized, ValidationError
from herald.core.telemetry import get_logger

log = get_logger("herald.auth")

JWT_AUDIENCE = "herald-api"
JWT_ISSUER = "herald"
TOUCH_EVERY_SECONDS = 60.0
BEARER = "Bearer"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def pause(seconds: float) -> None:
    """The username throttle's delay (a module-level function, so tests can observe it)."""
    await asyncio.sleep(seconds)


def _password_version(changed_at: datetime) -> int:
    """Microseconds since the epoch of the last password change (exact, no floats)."""
    return (changed_at - _EPOCH) // timedelta(microseconds=1)


class AuthenticationFailed(Unauthorized):
    """Unknown user or wrong password: deliberately indistinguishable."""

    def __init__(self) -> None:
        super().__init__("Authentication failed")


class PasswordChangeRejected(ValidationError):
    """A password change that did not happen; the message is shown to the user."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting, and with which rights."""

    user_id: uuid.UUID
    username: str
    scope: Scope
    via: str  # "session", "api_key" or "jwt"
    role: Role
    key_name: str | None = None  # the API key's name, when ``via`` is "api_key"

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int


@dataclass(frozen=True)
class AuthService:
    db: Database
    settings: Settings
    passwords: Passwords

    # -- users ----------------------------------------------------------------

    async def create_user(self, username: str, password: str, role: Role = Role.ADMIN) -> uuid.UUID:
        name = Username.parse(username)
        check_new_password(password)
        password_hash = await self.passwords.hash(password)
        async with self.db.connection() as conn:
            user_id = await repository.insert_user(conn, name.value, password_hash, role)
        if user_id is None:
            raise Conflict(f"a user named {name.value!r} already exists")
        log.info("user created", username=name.value, role=role.value)
        return user_id

    async def set_password(self, username: str, password: str) -> None:
        """Operator reset (CLI): new password, every session of the user ends."""
        check_new_password(password)
        password_hash = await self.passwords.hash(password)
        async with self.db.transaction() as conn:
            user = await repository.find_user_by_username(conn, username)
            if user is None:
                raise NotFound(f"no user named {username!r}")
            await repository.change_password(conn, user.id, password_hash)
            await repository.delete_all_sessions(conn, user.id)
            # An operator reset also lifts a lock-out of the account.
            await repository.clear_failures(conn, user.username.lower())
        log.info("password reset", username=user.username)

    async def ensure_first_admin(self, username: str = "admin") -> str | None:
        """Create ``admin`` with a random password when there is no user at all."""
        async with self.db.connection() as conn:
            if await repository.count_users(conn) > 0:
                return None
        password = generate_password()
        try:
            await self.create_user(username, password)
        except Conflict:
            return None  # another process created it first
        return password

    # -- logging in -------------------------------------------------------------

    async def authenticate(
        self, username: str, password: str, ip: str, *, device: str | None = None
    ) -> UserRecord:
        """Check a login, throttled per client address, per device and per username.

        * ``device`` is the browser's device cookie (``auth/devices.py``). When it proves
          that this browser signed in as the user before, only that cookie's own failures
          limit the attempt (429 past the limit): strangers cannot keep it out.
        * Any other client is refused past the limit of its address's failures (429),
          and the username's failures *delay* it (``login_delay``, bounded): slowed,
          never locked out, so no one can lock the owner out by failing from many
          addresses (OWASP, "Blocking Brute Force Attacks").

        The attempt is recorded (and committed) *before* the password is checked, so
        concurrent guesses count against each other and at most the limit get a password
        check per address or device; a successful or refused attempt removes its record.
        """
        auth = self.settings.auth
        window = auth.login_window_minutes * 60
        limit = auth.login_max_failures
        key = username_key(username)
        async with self.db.connection() as conn:
            user = await repository.find_user_by_username(conn, key)
            trusted = devices.recognise(self.settings, device, user.id) if user else None
            counted = trusted.failure_key if trusted else key
            attempt = await repository.record_attempt(conn, counted, ip)
            failures = await repository.recent_failures(conn, counted, ip, window, limit + 1)
            # The hard limit: the device's own failures for a trusted browser, else the address's.
            hard = failures.username if trusted else failures.ip
            if hard.count > limit:
                await repository.delete_attempts(conn, attempt)
        if hard.count > limit:
            now = datetime.now(UTC)
            wait = ((hard.pivot or now) + timedelta(seconds=window) - now).total_seconds()
            log.warning("login throttled", ip=ip, failures=hard.count, trusted_device=bool(trusted))
            raise RateLimited(
                "Too many failed login attempts: please wait before trying again.",
                retry_after=max(1, int(wait) + 1),
            )
        if trusted is None:
            delay = login_delay(failures.username.count, limit, auth.login_max_delay_seconds)
            if delay > 0:
                log.warning(
                    "login delayed", ip=ip, username_failures=failures.username.count, seconds=delay
                )
                await pause(delay)
        verification = await self.passwords.verify(user.password_hash if user else None, password)
        if user is None or not verification.ok:
            log.info("login failed", ip=ip, trusted_device=bool(trusted))
            raise AuthenticationFailed
        if user.disabled_at is not None:
            # The same answer as a wrong password: the attempt stays counted.
            log.info("login refused: user disabled", username=user.username)
            raise AuthenticationFailed
        async with self.db.connection() as conn:
            await repository.delete_attempts(conn, attempt)
        if verification.needs_rehash:
            new_hash = await self.passwords.hash(password)
            async with self.db.connection() as conn:
                await repository.set_password_hash(conn, user.id, new_hash)
            log.info("password rehashed with current parameters", username=user.username)
        return user

    def new_device_cookie(self, user: UserRecord) -> str:
        """The device cookie a browser gets at every successful sign-in (``auth/devices``)."""
        return devices.issue(self.settings, user.id)

    async def start_session(
        self, user: UserRecord, *, user_agent: str | None, ip: str | None
    ) -> str:
        token = new_session_token()
        async with self.db.connection() as conn:
            await repository.insert_session(
                conn,
                digest(token),
                user.id,
                lifetime_seconds=self.settings.auth.session_absolute_hours * 3600,
                user_agent=(user_agent or "")[:512] or None,
                ip=ip,
            )
        log.info("session started", username=user.username)
        return token

    async def resolve_session(self, token: str) -> SessionRecord | None:
        idle = self.settings.auth.session_idle_minutes * 60
        async with self.db.connection() as conn:
            session = await repository.find_session(conn, digest(token), idle)
            if session is None:
                return None
            age = (datetime.now(UTC) - session.last_seen_at).total_seconds()
            if age > TOUCH_EVERY_SECONDS:
                await repository.touch_session(conn, session.token_hash)
        return session

    async def session_alive(self, token: str) -> bool:
        """Whether the session still exists and has not expired. Unlike
        :meth:`resolve_session` it is no activity: an open live socket, which asks this
        every few seconds, keeps no session alive past its idle limit."""
        idle = self.settings.auth.session_idle_minutes * 60
        async with self.db.connection() as conn:
            return await repository.find_session(conn, digest(token), idle) is not None

    async def end_session(self, token: str) -> None:
        async with self.db.connection() as conn:
            await repository.delete_session(conn, digest(token))

    async def change_password(
        self, session: SessionRecord, *, current: str, new: str, check: str
    ) -> None:
        if not hmac.compare_digest(new.encode(), check.encode()):
            raise PasswordChangeRejected(
                "You entered two different new passwords - the field values must match."
            )
        async with self.db.connection() as conn:
            user = await repository.find_user_by_id(conn, session.user_id)
        if user is None or not (await self.passwords.verify(user.password_hash, current)).ok:
            raise PasswordChangeRejected("The current password is incorrect.")
        try:
            check_new_password(new, current=current)
        except ValidationError as exc:
            raise PasswordChangeRejected(exc.message) from None
        password_hash = await self.passwords.hash(new)
        async with self.db.transaction() as conn:
            await repository.change_password(conn, user.id, password_hash)
            await repository.delete_other_sessions(conn, user.id, session.token_hash)
        log.info("password changed; other sessions ended", username=user.username)

    # -- API credentials ------------------------------------------------------------

    async def create_api_key(
        self, user_id: uuid.UUID, name: str, scope: Scope
    ) -> tuple[uuid.UUID, str]:
        label = name.strip()
        if not label or len(label) > 100:
            raise ValidationError("an API key needs a name of 1-100 characters", field="name")
        key = new_api_key()
        async with self.db.connection() as conn:
            key_id = await repository.insert_api_key(
                conn,
                user_id=user_id,
                name=label,
                prefix=key[: len(API_KEY_PREFIX) + 6],
                key_hash=digest(key),
                scope=scope,
            )
        log.info("api key created", key_id=str(key_id), scope=scope.value)
        return key_id, key

    async def revoke_api_key(self, key_id: uuid.UUID, user_id: uuid.UUID | None) -> None:
        async with self.db.connection() as conn:
            if not await repository.revoke_api_key(conn, key_id, user_id):
                raise NotFound("no such active API key")
        log.info("api key revoked", key_id=str(key_id))

    async def list_api_keys(self, user_id: uuid.UUID | None) -> list[repository.ApiKeyView]:
        async with self.db.connection() as conn:
            return await repository.list_api_keys(conn, user_id)

    def _jwt_key(self) -> bytes:
        secret = self.settings.secret_key.get_secret_value() if self.settings.secret_key else ""
        return hmac.new(secret.encode(), b"herald-jwt-v1", hashlib.sha256).digest()

    def issue_token(self, user: UserRecord) -> IssuedToken:
        ttl = int(self.settings.auth.jwt_ttl_minutes * 60)
        now = int(time.time())
        claims = {
            "sub": str(user.id),
            "name": user.username,
            "scope": Scope.WRITE.value,
            "iat": now,
            "exp": now + ttl,
            "iss": JWT_ISSUER,
            "aud": JWT_AUDIENCE,
            # Password version: a later password change invalidates the token.
            "pwv": _password_version(user.password_changed_at),
        }
        return IssuedToken(jwt.encode(claims, self._jwt_key(), algorithm="HS256"), ttl)

    async def resolve_bearer(self, token: str) -> Principal:
        """An API key or a JWT → the acting user; 401 for anything else."""
        if looks_like_api_key(token):
            async with self.db.connection() as conn:
                key = await repository.find_api_key(conn, digest(token))
                if key is None:
                    raise Unauthorized("invalid or revoked API key")
                await repository.touch_api_key(conn, key.id)
            return Principal(
                key.user_id, key.username, key.scope, "api_key", key.role, key_name=key.name
            )
        try:
            claims = jwt.decode(
                token,
                self._jwt_key(),
                algorithms=["HS256"],
                audience=JWT_AUDIENCE,
                issuer=JWT_ISSUER,
                options={"require": ["exp", "iat", "sub", "pwv"]},
            )
            user_id = uuid.UUID(str(claims["sub"]))
            scope = Scope(claims.get("scope", "read"))
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the access token has expired") from None
        except (jwt.InvalidTokenError, ValueError):
            raise Unauthorized("invalid access token") from None
        async with self.db.connection() as conn:
            user = await repository.find_user_by_id(conn, user_id)
        # A password change revokes every token issued before it; disabling the user, all.
        if (
            user is None
            or user.disabled_at is not None
            or claims["pwv"] != _password_version(user.password_changed_at)
        ):
            raise Unauthorized("the access token is no longer valid")
        return Principal(user.id, user.username, scope, "jwt", user.role)
