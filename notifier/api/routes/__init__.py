"""The API's routes, one module per resource; `notifier.api.app.create_api` includes them."""
