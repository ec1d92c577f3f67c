"""Per-call credentials: the request context an image API passes on each call.

Some stores act as the user making the request rather than as the service:
Swift in multi-tenant mode keeps each image in its owner's own account and
reaches it with the user's token. The caller passes a :class:`RequestContext`
to ``Store.add/get/get_size/delete`` (``context=``); the store makes it the
current one for the driver's call, and a driver that needs it reads it with
:func:`current_context` (so third-party drivers' signatures never change).

The context is never logged, put in a location or shown in a repr: its token
is a bearer credential.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidArgument

__all__ = ["RequestContext", "current_context", "using_context"]

#: A token as it goes into an X-Auth-Token header.
_TOKEN = re.compile(r"[!-~]{1,16384}")


@dataclass(frozen=True)
class RequestContext:
    """Who makes the request, as Keystone said: the user's token and its service catalog.

    ``service_catalog`` is a list of services, in Keystone's v3 token form
    (``{"type", "endpoints": [{"interface", "region", "url"}]}``) or the v2 form
    Glance passes (``{"type", "endpoints": [{"region", "publicURL", "internalURL",
    "adminURL"}]}``). Neither the token nor the catalog appears in the repr.
    """

    auth_token: str = field(repr=False)
    project_id: str | None = None
    user_id: str | None = None
    service_catalog: Sequence[Mapping[str, Any]] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.auth_token, str) or not _TOKEN.fullmatch(self.auth_token):
            raise InvalidArgument(
                "RequestContext needs the user's token (auth_token): printable ASCII, without "
                "spaces or line ends"
            )

    @classmethod
    def of(cls, context: Any) -> RequestContext:
        """A RequestContext from any object with ``auth_token``, ``project_id`` (or
        ``tenant``), ``user_id`` (or ``user``) and ``service_catalog`` attributes: Glance's
        and oslo.context's request contexts, a SimpleNamespace."""
        if isinstance(context, RequestContext):
            return context
        project = getattr(context, "project_id", None) or getattr(context, "tenant", None)
        user = getattr(context, "user_id", None) or getattr(context, "user", None)
        return cls(
            auth_token=getattr(context, "auth_token", None) or "",
            project_id=project if isinstance(project, str) else None,
            user_id=user if isinstance(user, str) else None,
            service_catalog=tuple(getattr(context, "service_catalog", None) or ()),
        )

    def endpoint(
        self, service_type: str, interface: str = "public", region: str | None = None
    ) -> str | None:
        """The URL of the first ``service_type`` endpoint of ``interface`` (``public`` or
        glance_store's ``publicURL``; ``internal``, ``admin`` alike) in ``region`` (None:
        any), from either catalog form; None when the catalog has none."""
        interface = interface.removesuffix("URL")
        for service in self.service_catalog:
            if service.get("type") != service_type:
                continue
            for endpoint in service.get("endpoints") or ():
                where = endpoint.get("region") or endpoint.get("region_id")
                if region and where != region:
                    continue
                if "url" in endpoint:  # v3: one entry per interface
                    if endpoint.get("interface") == interface:
                        return str(endpoint["url"])
                elif endpoint.get(f"{interface}URL"):  # v2: every interface in one entry
                    return str(endpoint[f"{interface}URL"])
        return None


_CURRENT: ContextVar[RequestContext | None] = ContextVar("glance_store_ng_context", default=None)


def current_context() -> RequestContext | None:
    """The context of the store call being served on this thread, if the caller gave one."""
    return _CURRENT.get()


@contextlib.contextmanager
def using_context(context: Any) -> Iterator[None]:
    """Make ``context`` (a RequestContext, or anything :meth:`RequestContext.of` takes)
    the current one inside the block; None keeps the current one (an outer block's)."""
    if context is None:
        yield
        return
    reset = _CURRENT.set(RequestContext.of(context))
    try:
        yield
    finally:
        _CURRENT.reset(reset)
