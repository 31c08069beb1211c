"""The reference proxies in front of the users service: nginx (a bare reverse proxy) and HAProxy
doing the gateway's token checks itself (RS256 `jwt_verify` with auth's active signing key, `iss`,
`aud`, `exp`, and a stick-table rate limit). Each is its own process with one worker or thread,
as the gateway is one process; their configs are kept in the run's log directory."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import jwt
from common.testing import free_port
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from bench.listener import Listener, start_listener


def _binary(name: str) -> str | None:
    sbin = Path("/usr/sbin") / name
    return shutil.which(name) or (str(sbin) if sbin.exists() else None)


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream users {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://users;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def start_nginx(directory: Path, upstream: int) -> Listener | None:
    """nginx proxying to users (no checks of its own); None when nginx is not installed."""
    nginx = _binary("nginx")
    if nginx is None:
        return None
    port = free_port()
    config = directory / "nginx.conf"
    config.write_text(NGINX_CONF.format(dir=directory, upstream=upstream, port=port))
    command = [nginx, "-c", str(config), "-p", str(directory)]
    return start_listener("nginx", command, port, directory / "nginx.log")


# Every check fails closed: a claim that is missing or not of its type makes the ACL false, and
# each `deny ... unless` then refuses. `jwt_verify` is given the algorithm, never the token's
# `alg` (that would let a token choose `none` or HMAC); the header's `alg` and `typ` are checked
# as the gateway does. `/health` passes unchecked, as through the gateway.
HAPROXY_CONF = """
global
  nbthread 1
  maxconn 4096

defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive

frontend api
  bind 127.0.0.1:{port}
  # The gateway's general limit: requests per client IP per second (set out of reach here).
  stick-table type ip size 100k expire 10s store http_req_rate(1s)
  http-request track-sc0 src
  http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt {rate_limit} }}
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request set-var(txn.typ) var(txn.bearer),jwt_header_query('$.typ')
  http-request set-var(txn.iss) var(txn.bearer),jwt_payload_query('$.iss')
  http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query('$.aud')
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request set-var(txn.now) date()
  acl public path /health
  acl rs256 var(txn.alg) -m str RS256
  acl access_token var(txn.typ) -m str at+jwt
  acl signed var(txn.bearer),jwt_verify("RS256","{key}") -m int 1
  acl issuer var(txn.iss) -m str {issuer}
  acl audience var(txn.aud) -m str {audience}
  acl unexpired var(txn.exp),sub(txn.now) -m int gt 0
  http-request deny deny_status 401 unless public || rs256 access_token signed
  http-request deny deny_status 401 unless public || issuer audience unexpired
  default_backend users

backend users
  http-reuse always
  server users 127.0.0.1:{upstream} maxconn 64
"""


def signing_key_pem(auth_url: str, token: str) -> bytes:
    """The public key that signed `token` (auth's active key), from auth's JWKS, as PEM."""
    kid = jwt.get_unverified_header(token)["kid"]
    document = httpx.get(f"{auth_url}/.well-known/jwks.json", timeout=10.0).json()
    entry = next(key for key in document["keys"] if key.get("kid") == kid)
    public_key = RSAAlgorithm.from_jwk(json.dumps(entry))
    if not isinstance(public_key, RSAPublicKey):
        raise RuntimeError(f"key {kid} in auth's JWKS is not an RSA public key")
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def start_haproxy(
    directory: Path,
    upstream: int,
    *,
    key_pem: bytes,
    issuer: str,
    audience: str,
    rate_limit: int,
) -> Listener | None:
    """HAProxy checking the token itself, then proxying to users; None when not installed."""
    haproxy = _binary("haproxy")
    if haproxy is None:
        return None
    key = directory / "auth-signing-key.pem"
    key.write_bytes(key_pem)
    port = free_port()
    config = directory / "haproxy.cfg"
    config.write_text(
        HAPROXY_CONF.format(
            port=port,
            upstream=upstream,
            key=key,
            issuer=issuer,
            audience=audience,
            rate_limit=rate_limit,
        )
    )
    check = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy refuses {config}:\n{check.stdout}{check.stderr}")
    # -db: stay in the foreground, one process (no master-worker).
    command = [haproxy, "-db", "-f", str(config)]
    return start_listener("haproxy", command, port, directory / "haproxy.log")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def forged_tokens(token: str) -> dict[str, str]:
    """Tokens a checking proxy must refuse, made from a valid one."""
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    raw_signature = bytearray(_unb64(signature))
    raw_signature[len(raw_signature) // 2] ^= 0x01

    def with_claims(**changes: object) -> str:
        return ".".join((header, _b64(json.dumps({**claims, **changes}).encode()), signature))

    none_header = _b64(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    return {
        "a flipped signature bit": ".".join((header, payload, _b64(bytes(raw_signature)))),
        "another subject, old signature": with_claims(sub="00000000-0000-0000-0000-000000000000"),
        "expired, old signature": with_claims(exp=int(time.time()) - 3600),
        "alg none, no signature": f"{none_header}.{payload}.",
        "no token": "",
    }


def check_refuses_forgeries(url: str, token: str) -> list[str]:
    """Lines saying what `url` answered to the valid token and to each forgery; raises unless
    the valid one gets 200 and every forgery 401 or 403 (else the line measures nothing)."""
    lines = []
    with httpx.Client(timeout=10.0) as client:
        valid = client.get(url, headers={"Authorization": f"Bearer {token}"}).status_code
        lines.append(f"valid token: {valid}")
        problems = [] if valid == 200 else [f"the valid token got {valid}"]
        for what, forged in forged_tokens(token).items():
            headers = {"Authorization": f"Bearer {forged}"} if forged else {}
            status = client.get(url, headers=headers).status_code
            lines.append(f"{what}: {status}")
            if status not in (401, 403):
                problems.append(f"{what} got {status}")
    if problems:
        raise RuntimeError(f"{url} does not check tokens: {'; '.join(problems)}")
    return lines
