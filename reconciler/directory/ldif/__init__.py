"""The `ldif` directory kind: a directory read from an LDIF snapshot."""
