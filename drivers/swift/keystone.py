"""Keystone v3 password authentication for a Swift account, through keystoneauth1.

One :class:`KeystoneAuth` per set of credentials, shared by every thread of the
store: its token is reused until it has less than keystoneauth's minimum life
left (two minutes), then renewed before any request carries it; a token Swift
refuses (401) is renewed once. So a process asks Keystone for one token per
token lifetime. The object-store endpoint comes from the token's catalog
(``swift_store_region``, ``swift_store_endpoint_type``, ``swift_store_service_type``)
unless ``swift_store_endpoint`` names it.

Errors name the option to fix; no password or token appears in any of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from glance_store_ng.errors import (
    BackendUnavailable,
    ConfigError,
    PermissionDenied,
    StoreError,
)

if TYPE_CHECKING:
    from .account import ConnectionSettings, Credentials

__all__ = ["KeystoneAuth"]


class KeystoneAuth:
    """A token (and the storage URL) for ``credentials`` from the Keystone at their auth
    address."""

    def __init__(self, credentials: Credentials, settings: ConnectionSettings, label: str) -> None:
        try:
            from keystoneauth1 import exceptions, session
            from keystoneauth1.identity import v3
        except ImportError:
            raise ConfigError(
                f"{label}: swift_store_auth_version = 3 needs keystoneauth1 "
                "(pip install 'glance_store_ng[swift]')"
            ) from None
        self.credentials = credentials
        self.settings = settings
        self.label = label
        self._exceptions = exceptions
        self._endpoint: tuple[str, str] | None = None  # (token, storage URL) last found
        c = credentials
        project, _, user = c.user.rpartition(":")
        self._plugin = v3.Password(
            auth_url=c.auth_address,
            username=user,
            password=c.key,
            project_name=c.project_name or project or None,
            **c.domains(),
        )
        verify: Any = False if settings.insecure else (settings.cacert or True)
        self._session = session.Session(auth=self._plugin, verify=verify, timeout=settings.timeout)

    def auth(self, renew: bool = False) -> tuple[str, str]:
        """``(storage URL, token)``: the token in hand unless it expires soon or ``renew``
        (Swift refused it). Not thread-safe: the Account serializes its calls."""
        if renew:
            self._plugin.invalidate()
        try:
            token = self._session.get_token()
            if self._endpoint is None or self._endpoint[0] != token:
                self._endpoint = (token, self.settings.endpoint or self._find_endpoint())
        except self._exceptions.ClientException as exc:
            raise self._error(exc) from None
        return self._endpoint[1], token

    def _find_endpoint(self) -> str:
        s = self.settings
        try:
            url = self._session.get_endpoint(
                service_type=s.service_type,
                interface=s.endpoint_type.removesuffix("URL"),
                region_name=s.region,
            )
        except self._exceptions.EndpointNotFound:
            url = None
        if not url:
            raise ConfigError(
                f"{self.label}: the catalog of {self.credentials.auth_address} has no "
                f"{s.service_type} endpoint of interface {s.endpoint_type} in region "
                f"{s.region or '(any)'}; check swift_store_region, swift_store_endpoint_type "
                "and swift_store_service_type, or set swift_store_endpoint"
            )
        return str(url)

    def _error(self, exc: Exception) -> StoreError:
        c = self.credentials
        where = f"Keystone at {c.auth_address}"
        if isinstance(exc, self._exceptions.Unauthorized):  # Keystone tells no more
            return PermissionDenied(
                f"{self.label}: {where} refused {c.describe()} (HTTP 401: a wrong key, or "
                f"no such user, project or domain); check {c.origin}"
            )
        if isinstance(exc, (self._exceptions.ConnectFailure, self._exceptions.ConnectTimeout)):
            return BackendUnavailable(
                f"{self.label}: {where} did not answer ({type(exc).__name__}); check the auth "
                "address and that Keystone runs"
            )
        status = getattr(exc, "http_status", None)
        if status and status < 500:  # never NotFound: that would say the image is gone
            return ConfigError(
                f"{self.label}: {where} answered HTTP {status} to {c.describe()}; check that "
                "the auth address is Keystone's v3 URL (http://host:5000/v3)"
            )
        if status:
            return BackendUnavailable(f"{self.label}: {where} answered HTTP {status}")
        if isinstance(exc, self._exceptions.SSLError):
            return ConfigError(
                f"{self.label}: {where}: TLS failed; check swift_store_cacert (or "
                "swift_store_auth_insecure)"
            )
        return BackendUnavailable(f"{self.label}: {where} failed: {type(exc).__name__}")
