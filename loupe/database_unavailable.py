"""A database that cannot be reached answers 503 with Retry-After, not a 500.

While PostgreSQL restarts (or SQLite stays locked past its timeout) every request that touches the database
fails with `OperationalError`/`InterfaceError`. Nothing was stored by such a request (its transaction never
committed), so the honest answer is "try again shortly": clients and load balancers retry a 503, and the annotate
page shows the message and keeps the answer with its request id, so submitting again stores it once."""

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
MESSAGE = "The database is unavailable for a moment; nothing was stored. Try again in a few seconds."


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        # The cause stays in the log for staff; the user gets the one-line message.
        log.warning("database unavailable during %s %s: %s", request.method, request.path, exception)
        if request.path.startswith("/api/"):
            response: HttpResponse = JsonResponse({"message": MESSAGE, "extra": {}}, status=503)
        else:
            response = HttpResponse(MESSAGE, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
