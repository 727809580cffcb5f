"""Authentication, authorisation and rate limiting of the HTTP API (issue 6).

policy.py holds the pure rules (roles, permissions, the table of write endpoints); secrets.py the
hashing of passwords, tokens and MQTT passwords; web.py the Flask hooks that apply them.
"""
