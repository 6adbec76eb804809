"""Progressive search sessions for portals (issue 10 item 2, issue 14 item 3).

  work_bytes  each work serialised once per change (JSON bytes of its WorkView), shared by every reader
  changelog   one session's state and change log; diffs since any version it keeps
  store       the process's open sessions: the cap, idle expiry, the fan-out task of each
  routes      POST/GET/DELETE /api/v1/searches…, the long-poll
  sse         GET /api/v1/searches/{id}/events (Server-Sent Events, `id:` = version)
  lines       the NDJSON stream of /api/v1/search/stream, assembled from the same bytes

Sessions live in one broker process (memory only): behind a load balancer a portal's polls must
reach the node that holds the session (sticky routing; a session id starts with the node id when
`SessionSettings.node` is set, so a balancer can route on it).
"""
