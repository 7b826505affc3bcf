"""The LDAP directory kinds (`active-directory`, `openldap`): a live read over LDAP."""
