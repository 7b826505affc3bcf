"""The reference reads the plan is measured against, each run as its own process.

    python -m bench.readers python-ldap|ldap3 --url URL --bind DN --base B1 --filter F1 --attrs a,b --base B2 ...

Every reader pulls the same searches the plan makes (users, then groups, same
attributes, pages of 1000) and keeps every entry in memory until the end, as a
sync tool that diffs afterwards has to. It prints the entry count on stderr so
the harness can check all readers saw the same directory.
"""
from __future__ import annotations

import argparse
import os
import sys

PAGE_SIZE = 1000


def python_ldap(url: str, bind: str, password: str, searches: list[tuple[str, str, list[str]]]) -> list:
    """python-ldap (C libldap underneath): raw bytes values, paged with RFC 2696."""
    import ldap
    from ldap.controls import SimplePagedResultsControl

    connection = ldap.initialize(url)
    connection.protocol_version = 3
    connection.set_option(ldap.OPT_REFERRALS, 0)
    connection.simple_bind_s(bind, password)
    kept = []
    for base, ldap_filter, attributes in searches:
        control = SimplePagedResultsControl(True, size=PAGE_SIZE, cookie=b"")
        while True:
            message = connection.search_ext(base, ldap.SCOPE_SUBTREE, ldap_filter, attributes, serverctrls=[control])
            _, entries, _, controls = connection.result3(message)
            kept.extend(entry for entry in entries if entry[0] is not None)
            cookie = next((c.cookie for c in controls if c.controlType == SimplePagedResultsControl.controlType), b"")
            if not cookie:
                break
            control.cookie = cookie
    connection.unbind_s()
    return kept


def ldap3_stock(url: str, bind: str, password: str, searches: list[tuple[str, str, list[str]]]) -> list:
    """ldap3 as other Python sync tools use it: schema read at connect, formatted values, paged_search."""
    from ldap3 import Connection, Server

    connection = Connection(Server(url), bind, password, auto_bind=True)
    kept = []
    for base, ldap_filter, attributes in searches:
        kept.extend(connection.extend.standard.paged_search(base, ldap_filter, attributes=attributes,
                                                            paged_size=PAGE_SIZE, generator=True))
    connection.unbind()
    return [entry for entry in kept if entry.get("type") == "searchResEntry"]


READERS = {"python-ldap": python_ldap, "ldap3": ldap3_stock}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("reader", choices=sorted(READERS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--base", action="append", required=True)
    parser.add_argument("--filter", action="append", required=True)
    parser.add_argument("--attrs", action="append", required=True, help="comma-separated, one per --base")
    args = parser.parse_args()
    searches = [(b, f, a.split(",")) for b, f, a in zip(args.base, args.filter, args.attrs)]
    entries = READERS[args.reader](args.url, args.bind, os.environ["BENCH_BIND_PASSWORD"], searches)
    print(f"{len(entries)} entries", file=sys.stderr)


if __name__ == "__main__":
    main()
