"""Tokens for Microsoft Graph: the client credentials flow through msal, with a client secret, a
certificate, or a federated token (workload identity: a token file, GitHub Actions' OIDC token).

msal caches the token and asks for a new one when it nears expiry; `renew()` drops it when Graph
says it expired anyway (a revoked or clock-skewed token), so a long read goes on with a fresh one.

Every failure is a `DirectoryError` of one line: which directory, which step, the token
service's AADSTS code in words and the fix. Secrets (the client secret, the certificate's
password and key, the federated token, access tokens) are never in a message: `scrub` removes
any that a library echoes.
"""
from __future__ import annotations

import base64
import datetime
import json
import os
import re
import ssl
from typing import Callable

from ...errors import DirectoryError, ReconcilerError
from ...policy.model import Directory, SecretRef

# AADSTS codes a sign-in meets, in words, with the fix:
# https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes
AADSTS: dict[str, str] = {
    "7000215": "the client secret is not valid for this app (a wrong value, or the secret's ID instead of its "
               "value); create a secret under the app registration's Certificates & secrets and put its value in {secret}",
    "7000222": "the client secret has expired; create a new one under the app registration's Certificates & "
               "secrets and put its value in {secret}",
    "700016": "the tenant has no application with client_id {client_id}; check client_id and tenant (an app registered "
              "in another tenant needs admin consent in this one)",
    "90002": "tenant {tenant} does not exist; check tenant (its ID or a verified domain)",
    "900023": "tenant {tenant} is not a valid tenant ID or domain; check tenant",
    "700027": "the certificate's signature was not accepted: upload this certificate (its public part) to the app "
              "registration's Certificates & secrets",
    "700024": "the federated token has expired or is not yet valid; it is read afresh for every token, so the "
              "identity provider must keep it current",
    "70021": "no federated credential of the app matches the token (issuer, subject, audience); add one under the "
             "app registration's Certificates & secrets → Federated credentials",
    "700213": "no federated credential of the app matches the token's subject; add one for this workload",
    "700212": "the federated token has no audience the app's federated credential expects; check audience",
    "7000112": "the application is disabled in this tenant; enable it (Enterprise applications → Properties)",
    "7000218": "the request has no client secret or assertion; give one credential",
}


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    # a bearer token or a JWT that slipped into a library's message
    text = re.sub(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*", "***", text)
    return re.sub(r"(?i)(bearer\s+)\S+", r"\1***", text)


def _value(value: str | SecretRef | None) -> str | None:
    return value.resolve() if isinstance(value, SecretRef) else value


def tls_context(directory: Directory) -> ssl.SSLContext | bool:
    """What httpx verifies Entra ID's and Graph's certificates with: the system's CAs, or tls.ca_file."""
    tls = directory.tls
    if not tls.verify:
        return False
    if tls.ca_file:
        try:
            return ssl.create_default_context(cafile=tls.ca_file)
        except (ssl.SSLError, OSError):
            raise DirectoryError(f"directory {directory.name}: tls.ca_file {tls.ca_file} holds no PEM certificate "
                                 f"or cannot be read") from None
    return True


class Credential:
    """The app's credential, resolved from the policy when first needed; `secrets` are the values never to print."""

    def __init__(self, directory: Directory):
        self.directory = directory
        self.secrets: list[str] = []
        self.hint = ""  # which policy key holds the credential, for messages

    def msal_credential(self):
        graph = self.directory.graph
        assert graph is not None
        if graph.client_secret is not None:
            secret = graph.client_secret.resolve()
            self.secrets.append(secret)
            self.hint = f"${{{graph.client_secret.variable}}}"
            return secret
        if graph.certificate is not None:
            self.hint = f"directories.{self.directory.name}.certificate"
            return self._certificate()
        if graph.federated_token is not None:
            self.hint = f"directories.{self.directory.name}.federated_token"
            return {"client_assertion": self._assertion}
        raise DirectoryError(f"directory {self.directory.name}: no credential; give client_secret, certificate or "
                             f"federated_token")

    def _certificate(self) -> dict:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.serialization import pkcs12

        certificate = self.directory.graph.certificate
        where = f"directory {self.directory.name}: certificate {certificate.path}"
        password = certificate.password.resolve() if certificate.password is not None else None
        if password:
            self.secrets.append(password)
        try:
            with open(certificate.path, "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise DirectoryError(f"{where} cannot be read: {error.strerror}") from None
        secret = password.encode() if password else None
        try:
            if b"-----BEGIN" in data:
                key = serialization.load_pem_private_key(data, secret) if b"PRIVATE KEY-----" in data else None
                certificates = x509.load_pem_x509_certificates(data) if b"CERTIFICATE-----" in data else []
                cert = certificates[0] if certificates else None
            else:
                key, cert, _more = pkcs12.load_key_and_certificates(data, secret)
        except TypeError:  # an encrypted key without a password, or a password for an unencrypted one
            raise DirectoryError(f"{where}: the private key is encrypted and certificate.password is not given" if not password
                                 else f"{where}: certificate.password is given but the key is not encrypted; remove it") from None
        except ValueError as error:
            reason = "the password does not open it" if "password" in str(error).lower() or "decrypt" in str(error).lower() \
                else "it is neither PEM (key and certificate) nor PKCS#12 (.pfx)"
            raise DirectoryError(f"{where}: {reason}") from None
        if key is None:
            raise DirectoryError(f"{where} holds no private key; give a PEM file with the key and the certificate, "
                                 f"or the .pfx")
        if cert is None:
            raise DirectoryError(f"{where} holds no certificate (Entra ID finds the app's certificate by its thumbprint); "
                                 f"add the certificate to the file")
        now = datetime.datetime.now(datetime.timezone.utc)
        if cert.not_valid_after_utc < now:
            raise DirectoryError(f"{where} expired on {cert.not_valid_after_utc:%Y-%m-%d}; create a new one and upload "
                                 f"it to the app registration")
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        self.secrets.append(key_pem)
        return {"private_key": key_pem, "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode()}

    def _assertion(self) -> str:
        """The federated token, fetched afresh each time msal needs to sign in (it expires within the hour)."""
        federated = self.directory.graph.federated_token
        token = self._token_file(federated.file) if federated.file is not None else self._github_actions(federated.audience)
        self.secrets.append(token)
        return token

    def _token_file(self, file: str | SecretRef) -> str:
        path = _value(file)
        where = f"directory {self.directory.name}: federated_token.file {path}"
        try:
            with open(path, encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError as error:
            raise DirectoryError(f"{where} cannot be read: {error.strerror}") from None
        if not token:
            raise DirectoryError(f"{where} is empty; the workload's identity provider writes the token there")
        return token

    def _github_actions(self, audience: str) -> str:
        """GitHub Actions' OIDC token for the job: ACTIONS_ID_TOKEN_REQUEST_URL with the audience, authorised by
        ACTIONS_ID_TOKEN_REQUEST_TOKEN; GitHub sets both when the job has `permissions: id-token: write`."""
        import httpx

        where = f"directory {self.directory.name}: federated_token.github_actions"
        url, bearer = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL"), os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
        if not url or not bearer:
            raise DirectoryError(f"{where}: ACTIONS_ID_TOKEN_REQUEST_URL is not set: this is not a GitHub Actions job, "
                                 f"or the job lacks `permissions: id-token: write`")
        self.secrets.append(bearer)
        try:
            with httpx.Client(trust_env=True, timeout=self.directory.connect_timeout) as client:
                # the URL carries a query of its own (api-version): the audience is added to it, not put in its place
                from urllib.parse import urlencode

                asked = f"{url}{'&' if '?' in url else '?'}{urlencode({'audience': audience})}"
                answer = client.get(asked, headers={"Authorization": f"bearer {bearer}"})
        except httpx.HTTPError as error:
            raise DirectoryError(f"{where}: cannot reach GitHub's token service: "
                                 f"{scrub(str(error) or type(error).__name__, self.secrets)}") from None
        if answer.status_code != 200:
            raise DirectoryError(f"{where}: GitHub's token service answered {answer.status_code}; does the job have "
                                 f"`permissions: id-token: write`?")
        try:
            token = answer.json()["value"]
        except (ValueError, KeyError, TypeError):
            raise DirectoryError(f"{where}: GitHub's token service answered without a token") from None
        return token


def token_claims(access_token: str) -> dict:
    """An access token's claims, read without verifying it (Graph verifies it): only to say which permission
    is missing and which tenant answers. {} for a token that is not a JWT."""
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims if isinstance(claims, dict) else {}
    except (IndexError, ValueError):
        return {}


def token_roles(access_token: str) -> list[str]:
    """The application permissions an access token carries (its `roles` claim)."""
    roles = token_claims(access_token).get("roles")
    return sorted(roles) if isinstance(roles, list) else []


def token_tenant(access_token: str) -> str | None:
    """The tenant ID (`tid` claim, a GUID) the token was issued in: the tenant Graph answers for."""
    tenant = token_claims(access_token).get("tid")
    return tenant.lower() if isinstance(tenant, str) and tenant else None


class MsalHttp:
    """msal's HTTP client interface (msal.oauth2cli.http.HttpClient) on httpx: the token service is reached with
    the same TLS verification (tls.ca_file) and proxy settings as Graph. (msal's default, requests, lets
    REQUESTS_CA_BUNDLE override the CA it is given.)"""

    def __init__(self, directory: Directory):
        import httpx

        self.client = httpx.Client(
            verify=tls_context(directory), trust_env=True, follow_redirects=False,
            timeout=httpx.Timeout(connect=directory.connect_timeout, read=directory.operation_timeout,
                                  write=directory.operation_timeout, pool=directory.connect_timeout))

    def post(self, url, params=None, data=None, headers=None, **kwargs):
        if isinstance(data, dict):  # msal hands over the signed assertion as bytes; httpx would send their repr
            form = {key: value.decode("ascii") if isinstance(value, bytes) else value for key, value in data.items()}
            return self.client.post(url, params=params, data=form, headers=headers)
        return self.client.post(url, params=params, content=data, headers=headers)

    def get(self, url, params=None, headers=None, **kwargs):
        return self.client.get(url, params=params, headers=headers)

    def close(self) -> None:
        self.client.close()


class Tokens:
    """Access tokens for Graph from msal's ConfidentialClientApplication (cached, renewed before expiry)."""

    def __init__(self, directory: Directory):
        graph = directory.graph
        assert graph is not None
        self.directory = directory
        self.credential = Credential(directory)
        self.tenant = _value(graph.tenant) or ""
        self.client_id = _value(graph.client_id) or ""
        self.scope = f"{graph.graph}/.default"
        self._app = None
        self._http: MsalHttp | None = None
        self.acquired = 0  # tokens fetched from the token service (not from msal's cache)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    @property
    def secrets(self) -> list[str]:
        return self.credential.secrets

    def _application(self):
        if self._app is not None:
            return self._app
        import msal

        graph = self.directory.graph
        credential = self.credential.msal_credential()
        known = graph.login in {"https://login.microsoftonline.com", "https://login.microsoftonline.us",
                                "https://login.chinacloudapi.cn"}
        self._http = self._http or MsalHttp(self.directory)
        try:
            self._app = msal.ConfidentialClientApplication(
                self.client_id, client_credential=credential, authority=f"{graph.login}/{self.tenant}",
                http_client=self._http, instance_discovery=None if known else False, token_cache=msal.TokenCache())
        except ReconcilerError:
            raise
        except Exception as error:
            raise self._failure("reaching the token service", error) from None
        return self._app

    def token(self) -> str:
        app = self._application()
        try:
            result = app.acquire_token_for_client(scopes=[self.scope])
        except ReconcilerError:
            raise
        except Exception as error:
            raise self._failure("asking for a token", error) from None
        if "access_token" not in result:
            raise DirectoryError(self._refusal(result))
        if result.get("token_source") != "cache":
            self.acquired += 1
        token = result["access_token"]
        self.secrets.append(token)
        return token

    def renew(self) -> str:
        """A new token: Graph said the one it was sent has expired or is not valid."""
        app = self._application()
        app.remove_tokens_for_client()
        return self.token()

    def _where(self) -> str:
        return f"directory {self.directory.name}: signing in to tenant {self.tenant} as app {self.client_id}"

    def _refusal(self, result: dict) -> str:
        """The token service's error (AADSTS...) in one line with the fix."""
        description = str(result.get("error_description") or result.get("error") or "no token and no reason")
        code = next((str(c) for c in result.get("error_codes") or ()), None)
        match = re.match(r"AADSTS(\d+)", description)
        code = code or (match.group(1) if match else None)
        first = re.split(r"\r?\n|\. Trace ID:| Trace ID:", description)[0].strip()
        words = AADSTS.get(code or "")
        if words:
            words = words.format(secret=self.credential.hint or "the client secret", client_id=self.client_id,
                                 tenant=self.tenant)
            text = f"{self._where()}: AADSTS{code}: {words}"
        else:
            text = f"{self._where()}: {result.get('error', 'error')}: {first}"
        return scrub(text, self.secrets)

    def _failure(self, step: str, error: Exception) -> DirectoryError:
        """A connection or TLS failure while msal talks to the token service."""
        text = str(error) or type(error).__name__
        login = self.directory.graph.login
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            ca = self.directory.tls.ca_file
            advice = f"is tls.ca_file ({ca}) the CA that issued it?" if ca else "set tls.ca_file to the CA that issued it"
            reason = f"the TLS certificate of {login} is not trusted; {advice}"
        elif "Max retries exceeded" in text or "Failed to establish" in text or "Connection refused" in text \
                or "NameResolutionError" in text or "timed out" in text.lower():
            reason = f"cannot reach {login} ({_short_cause(text)}); check the network, the proxy (HTTPS_PROXY) or endpoints.login"
        else:
            reason = f"{type(error).__name__}: {_short_cause(text)}"
        return DirectoryError(scrub(f"{self._where()}: {step}: {reason}", self.secrets))


def _short_cause(text: str) -> str:
    """The innermost reason of a requests/urllib3 error chain: 'Connection refused', 'Name or service not known'."""
    for pattern in (r"\[Errno -?\d+\] ([^'\")]+)", r"(Connection refused)", r"(timed out)", r"(Name or service not known)"):
        match = re.search(pattern, text)
        if match:
            return match.group(1).strip()
    return text.splitlines()[0][:200]


Sleep = Callable[[float], None]
