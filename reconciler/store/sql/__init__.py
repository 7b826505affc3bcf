"""The SQL store: the application's users in SQL tables, in one transaction per apply.

    store: {kind: sqlite, path: .reconciler/store.db}    # sqlite.py, the default
    store: {kind: sql, url: '${DATABASE_URL}'}            # postgres.py, PostgreSQL

store.py is everything that is the same on every engine (`SqlStore`: reading,
applying, the apply lock, history, in portable SQL); an engine module
subclasses it with the connection, how a write transaction starts and how its
driver's errors read. The tables: schema.py (migrations) and
docs/store-schema.md. Rows to store values and back: rows.py. Writing the
changes: apply.py, after the store rules (`..rules`) have checked them all;
the tables' constraints stay as a backstop behind the rules.
"""
