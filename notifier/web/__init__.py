"""The HTTP face, composed: `app.create_app` puts the API (`notifier.api`) and the public
pages (`notifier.public`) side by side on one FastAPI app; `context` is what both are given
(the request context, tokens, the signed-push check). `api` and `public` import `context`
and never each other (tests/unit/test_layers.py)."""
