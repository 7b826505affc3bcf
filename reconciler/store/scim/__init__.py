"""The SCIM store: an application that speaks SCIM 2.0 (RFC 7643/7644), behind the Store protocol.

    store: {kind: scim, url: https://app.example.com/scim/v2, token: '${SCIM_TOKEN}'}

Users and teams live on the server (Users and Groups, keyed by externalId);
the lock, the history and the few relations SCIM cannot hold live in a side
file next to the policy (state.py). The store: store.py. Reading: view.py.
Applying: apply.py (the checks and the operations per change), execute.py and
bulk.py (the requests). HTTP: client.py. Resource shapes: mapping.py.
docs/store-scim.md is the user's side of all this.

SCIM has no transactions: instead of rolling back, the whole plan is checked
against a model of the store before the first request, and an apply that a
server error stops says what was done; the next plan finishes it.
"""
