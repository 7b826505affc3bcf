"""RFC 4515 filters evaluated offline, over a snapshot, the way a directory server would.

One evaluator: ldap3's filter parser and its offline mock server (`MOCK_SYNC`,
with the flavour's offline schema), searched through an ordinary `Connection`
so a filter the live sources would reject is rejected here with the same error.
The stock mock has gaps that would make a snapshot plan differ from a live one;
`SnapshotStrategy` overrides its evaluator to close them:

- extensible match raised; AD's matching rules are implemented: bitwise AND
  (1.2.840.113556.1.4.803), bitwise OR (.804) and in-chain (.1941, transitive
  membership through member/memberOf via `membership.Membership`);
- substrings were not anchored at the end (`(cn=*son)` matched "Sonja Smith")
  and lost escaped `*` on the way through the request;
- NOT over AND/OR, over multi-valued attributes and over `>=`/`<=` of a missing
  attribute gave the wrong answer (matched/unmatched sets were combined
  incorrectly); each entry is now evaluated on its own;
- DN-valued attributes (member, memberOf, manager, ...) compare as DNs: case,
  spacing and escaping (`\\2A` vs `*`) do not matter;
- one-level scope dropped entries with an escaped comma in their RDN and
  included the base itself.

`SnapshotSearch.explain` answers for one entry clause by clause (`Clause`, the
text of each clause as written, from `split_filter`), each clause evaluated by
the same search: what `reconciler explain` prints, for a snapshot and for an
entry read from a live server alike.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Iterable, Literal, Mapping, Sequence

from ldap3 import BASE, LEVEL, MOCK_SYNC, OFFLINE_AD_2012_R2, OFFLINE_SLAPD_2_4, SUBTREE, Connection, Server
from ldap3.core.exceptions import LDAPException
from ldap3.operation.search import (
    AND,
    MATCH_APPROX,
    MATCH_EQUAL,
    MATCH_EXTENSIBLE,
    MATCH_GREATER_OR_EQUAL,
    MATCH_LESS_OR_EQUAL,
    MATCH_PRESENT,
    MATCH_SUBSTRING,
    NOT,
    OR,
    ROOT,
    parse_filter,
    search_result_done_response_to_dict,
)
from ldap3.strategy.mockSync import MockSyncStrategy
from ldap3.utils.ciDict import CaseInsensitiveDict
from ldap3.utils.conv import ldap_escape_to_bytes

from ..dn import normalise_dn
from .membership import MEMBER_OF, Membership, member_dn

BITWISE_AND = "1.2.840.113556.1.4.803"
BITWISE_OR = "1.2.840.113556.1.4.804"
IN_CHAIN = "1.2.840.113556.1.4.1941"
SUPPORTED_RULES = (BITWISE_AND, BITWISE_OR, IN_CHAIN)

_DN_SYNTAXES = {"1.3.6.1.4.1.1466.115.121.1.12", "1.3.6.1.4.1.1466.115.121.1.34"}  # DN, NameAndOptionalUID
# DN-valued in every common schema, whether or not the offline schema knows them.
_DN_ATTRIBUTES = frozenset(
    {"member", "memberof", "uniquemember", "manager", "owner", "seealso", "secretary", "managedby",
     "directreports", "roleoccupant", "distinguishedname", "entrydn"}
)
_INTEGER = re.compile(r"^-?\d+$")

Scope = Literal["subtree", "one", "base"]
BASE_SCOPE, LEVEL_SCOPE = 0, 1  # the SearchRequest scope enumeration, as the mock receives it
NO_SUCH_OBJECT = 32
_SCOPES = {"subtree": SUBTREE, "one": LEVEL, "base": BASE}


class InvalidFilter(ValueError):
    """The filter cannot be parsed or asks for something no evaluator here supports."""


class NoSuchBase(LookupError):
    """A search base that is not an entry of the snapshot."""


class SnapshotSearch:
    """An offline DIT built from snapshot entries, searched with policy filters."""

    def __init__(self, flavour: str, member_attributes: Iterable[str] = ("member",)):
        server = Server("snapshot", get_info=OFFLINE_AD_2012_R2 if flavour == "active-directory" else OFFLINE_SLAPD_2_4)
        # check_names off: a live server evaluates unknown attribute names as absent
        # rather than refusing the filter, and snapshots carry site-specific schema.
        connection = Connection(server, client_strategy=MOCK_SYNC, check_names=False, raise_exceptions=False)
        strategy = SnapshotStrategy(connection, member_attributes)
        _install(connection, strategy)
        connection.bind()
        self._connection = connection
        self._strategy = strategy

    @property
    def membership(self) -> Membership:
        return self._strategy.membership

    def add(self, dn: str, attributes: Mapping[str, Sequence[str | bytes]]) -> str | None:
        """Adds one entry (attribute keys in any case) and returns its normalised DN;
        None if an entry with that DN is already present."""
        return self._strategy.add_snapshot_entry(dn, attributes)

    def contains(self, dn: str) -> bool:
        return normalise_dn(dn) in self._strategy.by_key

    def search(self, base: str, search_filter: str, scope: Scope = "subtree") -> list[str]:
        """DNs (as added) of the entries under `base` within `scope` matching `search_filter`,
        sorted by normalised DN. Raises InvalidFilter for a filter that cannot be evaluated."""
        self._strategy.search_filter = search_filter
        try:
            self._connection.search(base, search_filter, _SCOPES[scope], attributes=["1.1"])
        except InvalidFilter:
            raise
        except LDAPException as error:
            raise InvalidFilter(str(error) + _escaping_hint(search_filter)) from None
        finally:
            self._strategy.search_filter = None
        if (self._connection.result or {}).get("result") == NO_SUCH_OBJECT:
            raise NoSuchBase(base)
        found = [response["dn"] for response in self._connection.response or () if response.get("type") == "searchResEntry"]
        key_of = self._strategy.key_of
        return sorted(found, key=lambda dn: key_of.get(dn) or normalise_dn(dn))


    def explain(self, dn: str, search_filter: str) -> "Clause":
        """Whether the entry `dn` matches `search_filter`, clause by clause: every sub-filter is
        evaluated on its own with this same evaluator (a base search on the entry), so a clause's
        result is what the server would answer for it. Raises InvalidFilter like `search`."""
        shape = split_filter(search_filter)
        if shape is None:  # not split (a filter without parentheses): one clause, the whole filter
            return Clause(search_filter.strip(), "", self.search(dn, search_filter, "base") != [], (), None)
        return self._explain(dn, shape)

    def _explain(self, dn: str, shape: "_Shape") -> "Clause":
        children = tuple(self._explain(dn, child) for child in shape.children)
        matched = self.search(dn, shape.text, "base") != []
        return Clause(shape.text, shape.operator, matched, children, shape.attribute)


@dataclass(frozen=True)
class Clause:
    """One clause of a filter as written in the policy, and whether an entry matches it.

    `operator` is `&`, `|` or `!` for a composite clause (its `children` are the clauses
    inside it, in order) and "" for an item such as `(department=Finance)`, whose
    `attribute` is the attribute it tests (None for an extensible match without one).
    """

    text: str
    operator: str
    matched: bool
    children: tuple["Clause", ...] = ()
    attribute: str | None = None

    def failing(self) -> list["Clause"]:
        """The clauses that make this one fail, as written: the false clauses of an AND
        (looking inside nested ANDs), or the clause itself (an item, an OR none of whose
        alternatives holds, a NOT whose inner clause holds). Empty when it matches."""
        if self.matched:
            return []
        if self.operator == "&":
            return [failed for child in self.children for failed in child.failing()] or [self]
        return [self]

    def attributes(self) -> list[str]:
        """Every attribute the clause tests, lower-cased, in order of appearance, once each."""
        names = [self.attribute.lower()] if self.attribute else []
        for child in self.children:
            names += child.attributes()
        return list(dict.fromkeys(names))

    def to_json(self) -> dict:
        return {"text": self.text, "operator": self.operator or None, "matched": self.matched,
                "attribute": self.attribute, "children": [child.to_json() for child in self.children]}


@dataclass(frozen=True)
class _Shape:
    text: str
    operator: str
    children: tuple["_Shape", ...]
    attribute: str | None


def filter_attributes(search_filter: str) -> list[str]:
    """The attributes a filter tests, lower-cased, once each (empty for a filter that does not split)."""
    shape = split_filter(search_filter)

    def walk(node: _Shape) -> list[str]:
        names = [node.attribute.lower()] if node.attribute else []
        return names + [name for child in node.children for name in walk(child)]

    return list(dict.fromkeys(walk(shape))) if shape else []


def split_filter(search_filter: str) -> "_Shape | None":
    """The filter's clauses as written (text spans of the original, escapes and spacing kept),
    nested as the filter nests them; None if the text is not a parenthesised RFC 4515 filter
    this splitter can follow (the evaluator, not this, decides whether a filter is valid)."""
    try:
        shape, end = _split(search_filter, _skip_space(search_filter, 0))
    except (IndexError, ValueError):
        return None
    return shape if not search_filter[end:].strip() else None


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _split(text: str, start: int) -> tuple[_Shape, int]:
    """The clause starting at text[start] == '(' and the position just past its ')'."""
    if text[start] != "(":
        raise ValueError(start)
    position = _skip_space(text, start + 1)
    if text[position] in "&|!":
        operator = text[position]
        children: list[_Shape] = []
        position = _skip_space(text, position + 1)
        while text[position] != ")":
            child, position = _split(text, position)
            children.append(child)
            position = _skip_space(text, position)
        if operator == "!" and len(children) != 1:
            raise ValueError(start)
        return _Shape(text[start : position + 1], operator, tuple(children), None), position + 1
    depth = 0
    while True:  # an item: up to its closing parenthesis; a backslash escapes the next character
        char = text[position]
        if char == "\\":
            position += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                break
            depth -= 1
        position += 1
    item = text[start : position + 1]
    attribute = re.split(r"[=~<>:]", item[1:-1].strip(), maxsplit=1)[0].strip() or None
    return _Shape(item, "", (), attribute), position + 1


def _escaping_hint(search_filter: str) -> str:
    """Most broken policy filters hold a DN or name with parentheses, e.g. a group `R&D (Europe)`."""
    if re.search(r"=[^()]*\([^()]*\)[^()]*\)", search_filter):
        return "; parentheses inside a value must be escaped as \\28 and \\29 (and * as \\2A, \\ as \\5C), per RFC 4515"
    return ""


def _install(connection: Connection, strategy: MockSyncStrategy) -> None:
    """Points a connection at another strategy, as Connection.__init__ wires the stock one."""
    connection.strategy = strategy
    connection.send = strategy.send
    connection.open = strategy.open
    connection.get_response = strategy.get_response
    connection.post_send_single_response = strategy.post_send_single_response
    connection.post_send_search = strategy.post_send_search


@functools.lru_cache(maxsize=1 << 16)
def _dn_key(text: str) -> str:
    # Group DNs repeat in thousands of memberOf values; normalise each spelling once.
    return normalise_dn(text)


@functools.lru_cache(maxsize=1 << 16)
def _member_key(value: bytes | str) -> str:
    return member_dn(value)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _parent_key(key: str) -> str | None:
    """The normalised parent DN: everything after the first unescaped comma."""
    escaped = False
    for index, char in enumerate(key):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            return key[index + 1 :]
    return None


class SnapshotStrategy(MockSyncStrategy):
    """ldap3's MOCK_SYNC strategy with a correct evaluator (see the module docstring)."""

    def __init__(self, connection: Connection, member_attributes: Iterable[str] = ("member",)):
        super().__init__(connection)
        self.membership = Membership()
        self.member_attributes = frozenset(a.lower() for a in member_attributes)
        self.by_key: dict[str, str] = {}  # normalised DN -> DIT key
        self.key_of: dict[str, str] = {}  # DIT key -> normalised DN
        self.parent: dict[str, str | None] = {}  # DIT key -> normalised parent DN
        self.search_filter: str | None = None
        self._class_chains: dict[tuple[bytes, ...], list[bytes]] = {}
        schema = connection.server.schema
        self.dn_attributes = _DN_ATTRIBUTES | self.member_attributes | frozenset(
            name.lower()
            for name, info in (schema.attribute_types.items() if schema else ())
            if info.syntax in _DN_SYNTAXES
        )

    # ── loading ──

    def add_snapshot_entry(self, dn: str, attributes: Mapping[str, Sequence[str | bytes]]) -> str | None:
        """Stores an entry as the mock stores them (bytes values), without the stock
        add_entry's schema checks: a snapshot may use classes and attributes the
        offline schema does not know, and a server already accepted them."""
        key = normalise_dn(dn)
        if key in self.by_key:
            return None
        entry = CaseInsensitiveDict()
        for name, values in attributes.items():
            base_name = name.split(";")[0] if name.lower().endswith(";binary") else name
            raw = [v if isinstance(v, bytes) else v.encode("utf-8") for v in values]
            if base_name in entry:
                entry[base_name].extend(raw)
            else:
                entry[base_name] = raw
        if "objectClass" in entry:
            classes = tuple(entry["objectClass"])
            if classes not in self._class_chains:  # entries share a handful of class lists
                self._class_chains[classes] = self._with_superclasses(list(classes))
            entry["objectClass"] = list(self._class_chains[classes])
        entry["entryDN"] = [dn.encode("utf-8")]
        dit_key = dn.strip()
        self.connection.server.dit[dit_key] = entry
        self.by_key[key] = dit_key
        self.key_of[dit_key] = key
        self.parent[dit_key] = _parent_key(key)
        self._record_membership(key, entry)
        return key

    def _with_superclasses(self, classes: list[bytes]) -> list[bytes]:
        """objectClass as a server reports it: the listed classes and their superiors
        (a filter on `person` matches an entry exported as only `inetOrgPerson`)."""
        schema = self.connection.server.schema
        result = list(dict.fromkeys(classes))
        known = {c.lower() for c in result}
        index = 0
        while schema and index < len(result):
            info = schema.object_classes.get(_text(result[index]))
            for superior in (info.superior or ()) if info else ():
                if superior.lower() not in known:
                    known.add(superior.lower())
                    result.append(superior.encode("utf-8"))
            index += 1
        return result

    def _record_membership(self, key: str, entry: CaseInsensitiveDict) -> None:
        for name in self.member_attributes:
            for value in entry.get(name, ()):
                self.membership.add(key, _member_key(value))
        for value in entry.get(MEMBER_OF, ()):
            self.membership.add(_dn_key(_text(value)), key)

    # ── searching ──

    def _execute_search(self, request):
        base = normalise_dn(request["base"])
        if base not in self.by_key:
            return [], self._result(NO_SUCH_OBJECT, "no such object: " + request["base"])
        # The request's filter text is rebuilt by ldap3 from the encoded request and
        # loses escaping (\2A becomes *, extensible matches become a repr); the
        # caller's original text, parsed by the same ldap3 parser, is lossless.
        text = self.search_filter if self.search_filter is not None else request["filter"]
        try:
            root = parse_filter(text, None, auto_escape=True, auto_encode=False, validator=None, check_names=False)
        except LDAPException as error:
            raise InvalidFilter(str(error)) from None
        matched = self.evaluate_filter_node(root, self._candidates(base, request["scope"]))
        return [{"object": dn, "attributes": []} for dn in matched], self._result(0, "")

    def post_send_search(self, payload):
        """The stock version formats every result entry through the schema; searches
        here ask for no attributes (`1.1`), so the DN is all a response carries."""
        _message_id, _message_type, request, controls = payload
        responses, result = self.mock_search(request, controls)
        self.connection.response = [
            {"type": "searchResEntry", "dn": r["object"], "raw_dn": r["object"].encode("utf-8"),
             "attributes": {}, "raw_attributes": {}}
            for r in responses
        ]
        self.connection.result = search_result_done_response_to_dict(result)
        self.connection.result["type"] = "searchResDone"
        return self.connection.response

    @staticmethod
    def _result(code: int, message: str) -> dict:
        return {"resultCode": code, "matchedDN": "", "diagnosticMessage": message, "referral": None}

    def _candidates(self, base: str, scope: int) -> list[str]:
        if scope == BASE_SCOPE:
            return [self.by_key[base]]
        if scope == LEVEL_SCOPE:
            return [dit_key for dit_key, parent in self.parent.items() if parent == base]
        suffix = "," + base
        return [dit_key for key, dit_key in self.by_key.items() if key == base or key.endswith(suffix)]

    def evaluate_filter_node(self, node, candidates):
        """The set of candidates matching the filter tree rooted at `node`."""
        top = node.elements[0] if node.tag == ROOT else node
        prepared: dict[int, _Assertion] = {}
        return {dn for dn in candidates if self._matches(top, self.connection.server.dit[dn], dn, prepared)}

    def _matches(self, node, entry, dn: str, prepared: dict[int, "_Assertion"]) -> bool:
        tag = node.tag
        if tag == AND:
            return all(self._matches(e, entry, dn, prepared) for e in node.elements)
        if tag == OR:
            return any(self._matches(e, entry, dn, prepared) for e in node.elements)
        if tag == NOT:
            return not self._matches(node.elements[0], entry, dn, prepared)
        assertion = prepared.get(id(node))
        if assertion is None:
            assertion = prepared[id(node)] = _Assertion(node, self)
        return assertion.matches(entry, dn)


class _Assertion:
    """One leaf of a filter, its value unescaped once per search."""

    def __init__(self, node, strategy: SnapshotStrategy):
        assertion = node.assertion
        self.tag = node.tag
        self.strategy = strategy
        self.attribute = (assertion.get("attr") or "").split(";")[0].lower()
        self.is_dn = self.attribute in strategy.dn_attributes
        if self.tag == MATCH_SUBSTRING:
            parts = [_unescape(assertion.get("initial") or b"")]
            parts += [_unescape(part) for part in assertion.get("any") or ()]
            parts.append(_unescape(assertion.get("final") or b""))
            pattern = ".*".join(re.escape(_text(part)) for part in parts)
            self.pattern = re.compile(pattern, re.IGNORECASE | re.DOTALL)
        elif self.tag != MATCH_PRESENT:
            self.value = _unescape(assertion["value"])
            self.text = _text(self.value)
            self.rule = assertion.get("matchingRule") if self.tag == MATCH_EXTENSIBLE else None
            if self.tag == MATCH_EXTENSIBLE:
                self._check_extensible(assertion)

    def _check_extensible(self, assertion) -> None:
        if assertion.get("dnAttributes"):
            raise InvalidFilter("extensible match with :dn: (matching RDN values) is not supported offline")
        if not self.attribute:
            raise InvalidFilter("extensible match without an attribute is not supported offline")
        if self.rule and self.rule not in SUPPORTED_RULES:
            raise InvalidFilter(
                f"matching rule {self.rule} is not supported offline; supported: "
                f"{BITWISE_AND} (bitwise AND), {BITWISE_OR} (bitwise OR), {IN_CHAIN} (in chain)"
            )
        if self.rule in (BITWISE_AND, BITWISE_OR) and not _INTEGER.match(self.text):
            raise InvalidFilter(f"matching rule {self.rule} needs an integer value, not {self.text!r}")
        if self.rule == IN_CHAIN:
            self.target = _dn_key(self.text)

    def matches(self, entry, dn: str) -> bool:
        if self.tag == MATCH_EXTENSIBLE and self.rule == IN_CHAIN:
            return self._in_chain(dn)
        if self.tag == MATCH_PRESENT:
            return self.attribute == "objectclass" or bool(entry.get(self.attribute))
        values = entry.get(self.attribute) or ()
        if self.tag == MATCH_SUBSTRING:
            return any(self.pattern.fullmatch(_text(v)) for v in values)
        if self.tag in (MATCH_EQUAL, MATCH_APPROX) or (self.tag == MATCH_EXTENSIBLE and not self.rule):
            return any(self._equal(v) for v in values)
        if self.tag == MATCH_EXTENSIBLE:
            wanted = int(self.text)
            if self.rule == BITWISE_AND:
                return any(_INTEGER.match(_text(v)) and int(v) & wanted == wanted for v in values)
            return any(_INTEGER.match(_text(v)) and int(v) & wanted != 0 for v in values)
        if self.tag == MATCH_GREATER_OR_EQUAL:
            return any(self._compare(v) >= 0 for v in values)
        if self.tag == MATCH_LESS_OR_EQUAL:
            return any(self._compare(v) <= 0 for v in values)
        raise InvalidFilter(f"filter item type {self.tag} is not supported offline")

    def _equal(self, value: bytes) -> bool:
        if value == self.value:
            return True
        text = _text(value)
        if self.is_dn:
            return _dn_key(text) == _dn_key(self.text)
        if _INTEGER.match(text) and _INTEGER.match(self.text):
            return int(text) == int(self.text)
        return text.casefold() == self.text.casefold()

    def _compare(self, value: bytes) -> int:
        text = _text(value)
        if _INTEGER.match(text) and _INTEGER.match(self.text):
            left, right = int(text), int(self.text)
        else:
            left, right = text.casefold(), self.text.casefold()
        return (left > right) - (left < right)

    def _in_chain(self, dn: str) -> bool:
        """AD's LDAP_MATCHING_RULE_IN_CHAIN: the attribute's DN links, followed transitively."""
        strategy = self.strategy
        this = strategy.key_of[dn]
        if self.attribute == MEMBER_OF:
            return this in strategy.membership.all_members(self.target)
        if self.attribute in strategy.member_attributes:
            return this in strategy.membership.all_groups(self.target)
        if not self.is_dn:
            raise InvalidFilter(f"matching rule {IN_CHAIN} needs a DN-valued attribute, not {self.attribute}")
        return self.target in self._follow(this)

    def _follow(self, start: str) -> set[str]:
        """Every DN reachable from `start` through the attribute (e.g. a manager chain), cycle-safe."""
        dit = self.strategy.connection.server.dit
        seen: set[str] = set()
        frontier = [start]
        while frontier:
            key = frontier.pop()
            dit_key = self.strategy.by_key.get(key)
            for value in dit[dit_key].get(self.attribute, ()) if dit_key else ():
                linked = _dn_key(_text(value))
                if linked not in seen:
                    seen.add(linked)
                    frontier.append(linked)
        return seen


def _unescape(value: bytes | str) -> bytes:
    """RFC 4515 value escapes (\\2A, \\28, \\5C, \\00...) to the bytes they stand for."""
    return ldap_escape_to_bytes(value)
