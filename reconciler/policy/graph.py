"""Kind entra-id in the policy: Microsoft Graph's clouds, the user properties a mapping can name,
and the semantic checks of an entra-id directory (called from `checks`).

The property catalogue is Graph v1.0's `user` resource, the properties that hold text, a
boolean or a list of text and that `User.Read.All` reads
(https://learn.microsoft.com/en-us/graph/api/resources/user). Templates name them in any
case; the read `$select`s them as spelled here. `extensionAttribute1` ... `15` name the
values of `onPremisesExtensionAttributes` (AD's extensionAttribute1-15, synced).
"""
from __future__ import annotations

import re
from typing import Any

from ..errors import Problem
from .load import DocPath, Locator
from .model import SECRET_REFERENCE
from .schema_check import did_you_mean

# cloud -> (login endpoint, Graph endpoint): https://learn.microsoft.com/en-us/graph/deployments
CLOUDS: dict[str, tuple[str, str]] = {
    "global": ("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    "us-government": ("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    "china": ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}

USER_PROPERTIES: tuple[str, ...] = (
    "id", "accountEnabled", "ageGroup", "businessPhones", "city", "companyName", "consentProvidedForMinor",
    "country", "createdDateTime", "creationType", "department", "displayName", "employeeHireDate", "employeeId",
    "employeeType", "externalUserState", "faxNumber", "givenName", "imAddresses", "jobTitle",
    "legalAgeGroupClassification", "mail", "mailNickname", "mobilePhone", "officeLocation",
    "onPremisesDistinguishedName", "onPremisesDomainName", "onPremisesImmutableId", "onPremisesLastSyncDateTime",
    "onPremisesSamAccountName", "onPremisesSecurityIdentifier", "onPremisesSyncEnabled",
    "onPremisesUserPrincipalName", "otherMails", "postalCode", "preferredDataLocation", "preferredLanguage",
    "proxyAddresses", "securityIdentifier", "showInAddressList", "state", "streetAddress", "surname",
    "usageLocation", "userPrincipalName", "userType",
)
EXTENSION_ATTRIBUTES = tuple(f"extensionAttribute{n}" for n in range(1, 16))
EXTENSION_CONTAINER = "onPremisesExtensionAttributes"
# lower-cased -> as Graph spells it
GRAPH_NAMES: dict[str, str] = {name.lower(): name for name in (*USER_PROPERTIES, *EXTENSION_ATTRIBUTES)}

# Active Directory and OpenLDAP attribute names people carry over, and Graph's name for the same value
LDAP_TO_GRAPH: dict[str, str] = {
    "title": "jobTitle", "sn": "surname", "samaccountname": "onPremisesSamAccountName", "company": "companyName",
    "l": "city", "st": "state", "co": "country", "c": "country", "telephonenumber": "businessPhones",
    "mobile": "mobilePhone", "physicaldeliveryofficename": "officeLocation", "employeeid": "employeeId",
    "cn": "displayName", "name": "displayName", "useraccountcontrol": "accountEnabled",
    "objectguid": "id (or onPremisesImmutableId, the base64 of the AD objectGUID)",
    "distinguishedname": "onPremisesDistinguishedName", "objectsid": "onPremisesSecurityIdentifier",
    "uid": "mailNickname", "postofficebox": "streetAddress",
}

_GUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
LIVE_KEYS = ("tenant", "client_id", "client_secret", "certificate", "federated_token", "cloud", "endpoints",
             "throttle_budget", "tls", "timeouts")
CREDENTIALS = ("client_secret", "certificate", "federated_token")


def graph_name(attribute: str) -> str | None:
    """Graph's spelling of a template's attribute name, or None if Graph's users have no such property."""
    return GRAPH_NAMES.get(attribute.lower())


def unknown_property_message(attribute: str, directory: str) -> str:
    hint = LDAP_TO_GRAPH.get(attribute.lower()) or did_you_mean(attribute, GRAPH_NAMES.values())
    also = f"; Graph calls it {hint}" if hint else ""
    return (f"'{{{attribute}}}': directory {directory} is kind entra-id, and Microsoft Graph's users have no property "
            f"'{attribute}'{also} (give directories.{directory}.mapping its own templates when the policy's "
            f"mapping is written for LDAP)")


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and SECRET_REFERENCE.match(value) is not None


def entra_problems(name: str, directory: dict, policy: dict, folder: str, locate: Locator, check_file) -> list[Problem]:
    """What the schema cannot say about one entra-id directory: a snapshot or a tenant to sign in to, with
    one credential; the OData filters; templates naming Graph user properties."""
    base: DocPath = ("directories", name)
    problems: list[Problem] = []
    snapshot = directory.get("snapshot")
    if isinstance(snapshot, str):
        problems += check_file(snapshot, base + ("snapshot",), folder, "Graph snapshot", locate)
        for key in LIVE_KEYS:
            if key in directory:
                problems.append(locate.problem(base + (key,), f"{key} is for reading a tenant; a directory with snapshot "
                                                              "is read from the file (remove one of the two)", at_key=True))
    else:
        problems += _live_problems(base, directory, folder, locate, check_file)
    users = _mapping(directory.get("users"))
    for where, scope in ((("users",), users), (("groups",), _mapping(directory.get("groups")))):
        text = scope.get("filter")
        if isinstance(text, str):
            from ..odata import syntax_problem

            found = syntax_problem(text)
            if found is not None:
                offset, what = found
                path = base + where + ("filter",)
                problems.append(Problem(locate.within(path, offset), ".".join(map(str, path)),
                                        f"invalid OData filter: {what} (character {offset + 1})"))
    for index, group in enumerate(users.get("member_of") or ()):
        if isinstance(group, str) and not group.strip():
            problems.append(locate.problem(base + ("users", "member_of", index),
                                           "blank; give the group's object ID or its display name"))
    problems += _template_problems(name, directory, policy, locate)
    return problems


def _live_problems(base: DocPath, directory: dict, folder: str, locate: Locator, check_file) -> list[Problem]:
    problems: list[Problem] = []
    for key in ("tenant", "client_id"):
        if key not in directory:
            problems.append(locate.problem(base, f"kind entra-id needs {key} (or snapshot: a file to read offline)",
                                           at_key=True))
    tenant = directory.get("tenant")
    if isinstance(tenant, str) and not _is_reference(tenant):
        if tenant.lower() in ("common", "organizations", "consumers"):
            problems.append(locate.problem(base + ("tenant",), f"'{tenant}' names no tenant; an application reads one "
                                                               "tenant: give its ID (a GUID) or a domain of it"))
        elif not (_GUID.match(tenant) or _DOMAIN.match(tenant)):
            problems.append(locate.problem(base + ("tenant",), "give the tenant ID (a GUID, like "
                                                               "72f988bf-86f1-41af-91ab-2d7cd011db47) or one of its "
                                                               "domains (contoso.onmicrosoft.com), or ${AZURE_TENANT_ID}"))
    client_id = directory.get("client_id")
    if isinstance(client_id, str) and not _is_reference(client_id) and not _GUID.match(client_id):
        problems.append(locate.problem(base + ("client_id",), "client_id is the application (client) ID of the app "
                                                              "registration, a GUID; or ${AZURE_CLIENT_ID}"))
    given = [key for key in CREDENTIALS if key in directory]
    if not given:
        problems.append(locate.problem(base, "kind entra-id needs one credential: client_secret: '${NAME}', "
                                             "certificate: {path, password}, or federated_token "
                                             "(file, or github_actions: true)", at_key=True))
    for key in given[1:]:
        problems.append(locate.problem(base + (key,), f"give one credential: {given[0]} is already given; "
                                                      f"remove {key} or {given[0]}", at_key=True))
    certificate = _mapping(directory.get("certificate"))
    problems += check_file(certificate.get("path"), base + ("certificate", "path"), folder, "certificate", locate)
    federated = directory.get("federated_token")
    if isinstance(federated, dict):
        file, actions = federated.get("file"), federated.get("github_actions")
        if file is not None and actions:
            problems.append(locate.problem(base + ("federated_token",), "give file or github_actions: true, not both",
                                           at_key=True))
        elif file is None and actions is not True:
            problems.append(locate.problem(base + ("federated_token",), "federated_token needs file (the token file, "
                                                                        "e.g. '${AZURE_FEDERATED_TOKEN_FILE}') or "
                                                                        "github_actions: true", at_key=True))
        if isinstance(file, str) and not _is_reference(file):
            problems += check_file(file, base + ("federated_token", "file"), folder, "token file", locate)
        if "audience" in federated and not actions:
            problems.append(locate.problem(base + ("federated_token", "audience"),
                                           "audience is the audience of the GitHub Actions token; it goes with "
                                           "github_actions: true", at_key=True))
    for key, url in _mapping(directory.get("endpoints")).items():
        if isinstance(url, str):
            problem = _endpoint_problem(url)
            if problem:
                problems.append(locate.problem(base + ("endpoints", key), problem))
    tls = _mapping(directory.get("tls"))
    problems += check_file(tls.get("ca_file"), base + ("tls", "ca_file"), folder, "CA file", locate)
    return problems


def _endpoint_problem(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "does not parse as a URL"
    if parts.scheme not in ("https", "http") or not host:
        return "an endpoint is an https:// URL, like https://graph.microsoft.com"
    if parts.query or parts.fragment:
        return "an endpoint has no query or fragment"
    if parts.scheme == "http" and host not in ("localhost", "127.0.0.1", "::1"):
        return f"http:// to {host} would send tokens in clear; use https:// (http only to a loopback host)"
    return None


def _template_problems(name: str, directory: dict, policy: dict, locate: Locator) -> list[Problem]:
    """Each template this directory renders must name Graph user properties; the problem is reported
    where the template is written (the directory's own mapping, or the policy's)."""
    own = _mapping(directory.get("mapping"))
    top = _mapping(policy.get("mapping"))
    problems: list[Problem] = []
    found: list[tuple[DocPath, str]] = []
    for source, path in ((own, ("directories", name, "mapping")), (top, ("mapping",))):
        overridden = source is top  # the policy's templates count where the directory gives none of its own
        if isinstance(source.get("email"), list) and not (overridden and "email" in own):
            found += [(path + ("email", i), t) for i, t in enumerate(source["email"]) if isinstance(t, str)]
        if isinstance(source.get("display_name"), str) and not (overridden and "display_name" in own):
            found.append((path + ("display_name",), source["display_name"]))
        for key, text in _mapping(source.get("attributes")).items():
            if isinstance(text, str) and not (overridden and key in _mapping(own.get("attributes"))):
                found.append((path + ("attributes", key), text))
    seen: set[tuple[DocPath, str]] = set()
    for path, text in found:
        for attribute in re.findall(r"\{([^{}]+)\}", text):
            if graph_name(attribute.strip()) is None and (path, attribute) not in seen:
                seen.add((path, attribute))
                problems.append(locate.problem(path, unknown_property_message(attribute.strip(), name)))
    return problems
