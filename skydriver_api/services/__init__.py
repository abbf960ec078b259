"""The API's service layer: what each route does, apart from HTTP. Routers parse the request, call a
service and shape the response; services raise :mod:`.errors` that the app maps to status codes."""
