"""Bearer-token authentication: ``Authorization: Bearer <token>`` -> the token's principal.

The token is a Quanta token or a JWT of an identity provider ``governance.yaml`` declares (``issuers``).
The token store (salted hashes), the identity providers' keys and the principals belong to the platform;
this module only reads the header and asks ``platform.authenticate``, which raises ``AuthenticationError``
(401, saying why a JWT is refused, never echoing it) and records the refusal with the client's address
(``system.login_failures``).
"""

from __future__ import annotations

from flask import current_app, request

from ...governance.principals import Principal


def bearer_token() -> str | None:
    """The token of the request's ``Authorization: Bearer`` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def optional_principal() -> Principal | None:
    """The request's principal when it sends a token (``AuthenticationError`` if the token is not valid),
    None for an anonymous request."""
    if bearer_token() is None and not request.headers.get("Authorization"):
        return None
    return current_principal()


def current_principal() -> Principal:
    """The authenticated principal of the request (raises ``AuthenticationError`` without a valid token)."""
    platform = current_app.extensions["quanta.platform"]
    return platform.authenticate(bearer_token(), "http", request.remote_addr)  # a refusal is logged there
