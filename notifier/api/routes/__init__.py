"""The API's routes, one module per resource; `notifier.web.app.create_app` includes them."""
