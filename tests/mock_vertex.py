"""A local Vertex AI: Google's OAuth token endpoint plus Gemini and Anthropic publisher paths.

The token endpoint checks the service account's signed JWT (RS256, the key's own public half)
the way Google does, and issues short-lived bearer tokens; the model paths accept only those.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt

from tests.mock_anthropic import answer_blocks, message, stream_events
from tests.mock_gemini import MockGemini, error

PROJECT = "test-project-4711"
# Google signs grants for its own token endpoint, whichever token_uri the key file names.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


def service_account_file(directory: Path, token_uri: str) -> tuple[Path, str]:
    """A service-account key file, and the public key that verifies its signatures."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    info = {
        "type": "service_account", "project_id": PROJECT, "private_key_id": "key-1",
        "private_key": private, "client_email": "gateway@test-project-4711.iam.gserviceaccount.com",
        "client_id": "1234567890", "token_uri": token_uri,
    }  # fmt: skip
    path = directory / "service-account.json"
    path.write_text(json.dumps(info))
    return path, public


class MockVertex(MockGemini):
    def __init__(self) -> None:
        super().__init__()
        self.public_key = ""
        self.token_lifetime = 3600
        self.minted: dict[str, float] = {}  # token -> expiry
        self._mint_lock = threading.Lock()

    def routes(self, app: web.Application) -> None:
        base = "/v1/projects/{project}/locations/{location}/publishers"
        app.router.add_post("/token", self.token)
        app.router.add_post(base + "/google/models/{target}", self.generate)
        app.router.add_post(base + "/anthropic/models/{target}", self.anthropic)

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(
                str(form["assertion"]), certs=self.public_key, audience=GOOGLE_TOKEN_AUDIENCE
            )
        except ValueError as err:
            return web.json_response(
                {"error": "invalid_grant", "error_description": str(err)}, status=400
            )
        if "cloud-platform" not in claims.get("scope", ""):
            return web.json_response({"error": "invalid_scope"}, status=400)
        with self._mint_lock:
            token = f"ya29.mock-{len(self.minted) + 1}"
            self.minted[token] = time.time() + self.token_lifetime
        return web.json_response({"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"})  # fmt: skip

    def check_auth(self, request: web.Request) -> web.Response | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.minted.get(token, 0) < time.time():
            return error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        if request.match_info["project"] != PROJECT:
            return error(403, "PERMISSION_DENIED", "Permission denied on resource project.")
        return None

    async def anthropic(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        denied = self.check_auth(request)
        if denied is not None:
            return denied
        if body.get("anthropic_version") != "vertex-2023-10-16" or "model" in body:
            return web.json_response(
                {
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": "anthropic_version: vertex-2023-10-16 required; model must not be in the body",
                    },
                },
                status=400,
            )
        model, _, method = request.match_info["target"].partition(":")
        body = {**body, "model": model}
        blocks, stop = answer_blocks(body)
        if method == "rawPredict":
            return web.json_response(message(body, blocks, stop))
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for name, data in stream_events(body, blocks, stop):
            await response.write(
                f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()
            )
        await response.write_eof()
        return response  # fmt: skip
