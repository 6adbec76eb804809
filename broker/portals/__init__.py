"""Portals: API keys, per-key rate limits, anonymous search per consortium, CORS.

  keys.py         the key format, the keys file (TOML) and the in-memory store requests are checked against
  access.py       the middleware: who is calling (a key, the consortium's own pages, or anonymous), 401s
  first_party.py  the pages' pass, so the consortium's own pages search when anonymous search is off
  cors.py         CORS for the configured origins only (preflight and response headers)
  cli.py          `yokodan keys create | list | revoke`
"""
