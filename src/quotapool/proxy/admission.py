"""The door every request passes before anything is served: its client key (when keys are
required), where it comes from, its Host, Origin and body type; the admin token where the
pool's own views need it; a key's allowlist and limits once its model is known."""

from __future__ import annotations

from quotapool.control.keys import KeyRing, presented
from quotapool.domain.client import ClientKey
from quotapool.proxy.asgi import Scope
from quotapool.proxy.errors import Dialect, ErrorResponse, error
from quotapool.proxy.guard import Guard, Refusal, is_loopback
from quotapool.proxy.parse import BadRequest
from quotapool.proxy.record import Record

REMOTE_REFUSED = (
    "quotapool serves only loopback clients until client keys exist: create one on the server "
    "with `quotapool keys create NAME` (in Docker: `docker exec quotapool quotapool keys create "
    "NAME`) and send it as the API key; or, behind your own access control, set allow_remote = "
    "true (QUOTAPOOL_ALLOW_REMOTE=true)."
)
_METRICS_NEED_ADMIN = (
    "Metrics need the admin token as a bearer (`quotapool admin token` prints one), or "
    "metrics_public = true."
)

Admitted = tuple[ErrorResponse | None, ClientKey | None]
"""Why a request is refused (None: it is not), and the client key it came with."""


class Admission:
    def __init__(
        self, *, keys: KeyRing | None, guard: Guard, allow_remote: bool, metrics_public: bool
    ) -> None:
        self.keys = keys
        self.guard = guard
        self.allow_remote = allow_remote
        self.metrics_public = metrics_public

    @property
    def keys_required(self) -> bool:
        return self.keys is not None and self.keys.required

    def _remote(self, scope: Scope) -> bool:
        client = scope.get("client")
        return client is not None and not is_loopback(client[0])

    async def request(
        self, scope: Scope, dialect: Dialect, *, key_needed: bool, json_body: bool
    ) -> Admitted:
        """An HTTP request or a WebSocket upgrade at the door (`key_needed` False: the probes,
        open to any address for the load balancers and orchestrators on other hosts). One
        refused with a key this replica does not know is looked at again once the keys are
        read anew, if they changed: a key created a moment ago (`export QP_KEY=$(quotapool
        keys create me)`, then the client) works at once, not after the next watch."""
        admitted = self._request(scope, dialect, key_needed=key_needed, json_body=json_body)
        if (
            admitted[0] is not None
            and self.keys is not None
            and presented(scope["headers"]) is not None
            and await self.keys.caught_up()
        ):
            admitted = self._request(scope, dialect, key_needed=key_needed, json_body=json_body)
        return admitted

    def _request(
        self, scope: Scope, dialect: Dialect, *, key_needed: bool, json_body: bool
    ) -> Admitted:
        key = None
        if key_needed and self.keys is not None and self.keys.required:
            found = self.keys.identify(scope["headers"], dialect)
            if isinstance(found, ErrorResponse):
                return found, None
            key = found
        if key is None and key_needed and not self.allow_remote and self._remote(scope):
            return error(dialect, 403, REMOTE_REFUSED), None
        if refused := self.guard.refusal(scope["headers"], json_body=json_body):
            return error(dialect, refused.status, refused.message), key
        return None, key

    async def pool_view(self, scope: Scope, dialect: Dialect) -> Admitted:
        """The pool's view: account names (emails) and their quota are the admin's, not every
        key holder's."""
        refused, key = await self.request(scope, dialect, key_needed=False, json_body=False)
        if refused is None and not self.allow_remote and self._remote(scope):
            refused = error(dialect, 403, REMOTE_REFUSED)
        keys = self.keys
        if (
            refused is None
            and keys is not None
            and keys.required
            and not keys.is_admin(scope["headers"])
        ):
            message = "With client keys, the pool view needs the admin token."
            refused = error(dialect, 403, message, code="permission_error")
        return refused, key

    async def socket(self, scope: Scope, record: Record) -> Admitted:
        """A WebSocket upgrade; each of its turns is admitted for its model later."""
        codex = Dialect.CODEX
        refused, key = await self.request(scope, codex, key_needed=True, json_body=False)
        if refused is not None or key is None or self.keys is None:
            return refused, key
        record.client_key = key.name
        return self.keys.admit(key, None, codex), key

    async def admin(self, scope: Scope) -> Refusal | None:
        """The admin API and the dashboard (they check their own token): the remote rule (a
        client key in use opens them to other machines; one created a moment ago too) and the
        guard, own pages allowed."""
        if (
            not (self.allow_remote or self.keys_required)
            and self._remote(scope)
            and not (self.keys is not None and await self.keys.caught_up() and self.keys_required)
        ):
            return Refusal(403, REMOTE_REFUSED)
        return self.guard.refusal(scope["headers"], json_body=False, own_pages=True)

    def metrics(self, scope: Scope) -> ErrorResponse | None:
        """`GET /metrics`: for the admin token, or anyone with `metrics_public = true`."""
        if refused := self.guard.refusal(scope["headers"], json_body=False):
            return error(Dialect.OPENAI, refused.status, refused.message)
        if self.metrics_public or (self.keys is not None and self.keys.is_admin(scope["headers"])):
            return None
        return error(Dialect.OPENAI, 401, _METRICS_NEED_ADMIN, code="invalid_api_key")

    async def model(
        self, key: ClientKey | None, model: str, dialect: Dialect, record: Record
    ) -> None:
        """A client key's model allowlist and limits, once the model is known (`BadRequest`)."""
        if key is None or self.keys is None:
            return
        record.client_key = key.name
        if (over := self.keys.admit(key, model, dialect, record.request_id)) is not None:
            raise BadRequest(over)
        if (over := await self.keys.confirm(key, record.request_id, dialect)) is not None:
            raise BadRequest(over)
