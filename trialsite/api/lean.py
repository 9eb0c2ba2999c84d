"""A shorter DRF dispatch for the phone's plain JSON reads (GET /api/v1/me, GET /api/v1/surveys).

`LeanGet` is a mixin for an APIView. A GET whose answer DRF's content negotiation could only make
`application/json` (no `Accept` header, `Accept: */*` or `Accept: application/json`, no `?format=` and no format
suffix, and a view whose only renderer is DRF's JSONRenderer under the default negotiation, without versioning)
skips the negotiation and the per-request `Allow` header computation (made once per view class) and sets what
they would have set: `request.accepted_renderer` (a JSONRenderer), `request.accepted_media_type`
(`application/json`), `request.version` and `request.versioning_scheme` (None). Everything else is DRF's own
code, called as `APIView.dispatch` calls it: the same Request, the view's authentication classes, permission
classes and throttles (in that order), its handler, its `handle_exception` (the contract's error body and the
`WWW-Authenticate` header) and `finalize_response`, so the response is the one DRF makes (a test pins status,
headers and body against the full dispatch). Any other request takes `APIView.dispatch` unchanged.
"""

from __future__ import annotations

from functools import cache

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer

_PLAIN_ACCEPT = frozenset({None, "*/*", "application/json"})
_MEDIA_TYPE = "application/json"


@cache
def _eligible(view_class) -> bool:
    """The view negotiates as DRF would only to JSON: one renderer, JSONRenderer, the default negotiation."""
    return (
        list(view_class.renderer_classes) == [JSONRenderer]
        and view_class.content_negotiation_class is DefaultContentNegotiation
        and view_class.versioning_class is None
    )


_allow: dict[type, str] = {}  # view class → its Allow header (the methods it has)


class LeanGet:
    """Mixin for an APIView (before it in the bases): plain JSON GETs dispatched without content negotiation."""

    def dispatch(self, request, *args, **kwargs):
        settings = self.settings
        if (
            request.method != "GET"
            or request.META.get("HTTP_ACCEPT") not in _PLAIN_ACCEPT
            or not _eligible(type(self))
            or (settings.URL_FORMAT_OVERRIDE and settings.URL_FORMAT_OVERRIDE in request.GET)
            or (settings.FORMAT_SUFFIX_KWARG and kwargs.get(settings.FORMAT_SUFFIX_KWARG))
        ):
            return super().dispatch(request, *args, **kwargs)
        self.args = args
        self.kwargs = kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        allow = _allow.get(type(self))
        if allow is None:
            allow = _allow[type(self)] = self.default_response_headers["Allow"]
        self.headers = {"Allow": allow}
        self.format_kwarg = None
        # What DRF's negotiation answers for these Accept headers, and no versioning.
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), _MEDIA_TYPE
        request.version, request.versioning_scheme = None, None
        try:
            self.perform_authentication(request)
            self.check_permissions(request)
            self.check_throttles(request)
            response = self.get(request, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - as APIView.dispatch: the view's own exception handling
            response = self.handle_exception(exc)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response
