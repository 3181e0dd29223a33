"""A Scale-compatible REST API under /v1, so scripts written for Scale's API and its official Python
client (`scaleapi`) run unchanged against Winnow.

What the client (2.18.4) needs, and this module keeps to: HTTP basic auth with the API key (the user's
Winnow API token) as the username; only HTTP 200 is success; routes have no trailing slash; errors are
`{"error": "…"}` objects whose status picks the client's exception (400 bad request, 401 bad key, 404
not found, 409 duplicate only: a state that forbids the request, such as finalizing a finalized
batch, is a 400); project and batch names arrive percent-encoded and may contain `/`; task lists
page with `next_token` and never say `has_more` without one; query booleans arrive as `True`/`False`.

Projects, batches and tasks made here are ordinary Winnow objects (same queue, gold, consensus,
audits, exports and splits). Views parse, authorise and call the labeling services; the shapes
Scale documents are built by `project_json`, `batch_json` and `task_json`.
"""
