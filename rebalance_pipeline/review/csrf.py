"""Cross-site request forgery tokens for the review forms.

The Airflow UI signs users in with an HttpOnly cookie, which a browser also sends on a
request another site makes it send. Every form that changes something therefore carries a
token only our own page can know: the signed-in user's id and the session it was issued in
(a digest of Airflow's JWT cookie), signed (itsdangerous) with the api-server's secret key
and stamped with the time. A token is valid for that user, in that session (a logout ends
it: the next sign-in has another cookie), for ``MAX_AGE`` seconds.
"""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALT = "rebalance-review-csrf"
MAX_AGE = 12 * 3600   # a morning's review session


class CsrfError(Exception):
    """The form's token is missing, forged, expired or someone else's."""


def issue(secret: str, user_id: str, session: str = "") -> str:
    return URLSafeTimedSerializer(secret, salt=SALT).dumps([user_id, session])


def verify(secret: str, user_id: str, token: str | None, session: str = "", max_age: int = MAX_AGE) -> None:
    if not token:
        raise CsrfError("the form has no CSRF token; reload the page and try again")
    try:
        owner = URLSafeTimedSerializer(secret, salt=SALT).loads(token, max_age=max_age)
    except SignatureExpired:
        raise CsrfError("the page is too old; reload it and decide again") from None
    except BadSignature:
        raise CsrfError("the form's CSRF token is not valid") from None
    if not (isinstance(owner, list) and len(owner) == 2):
        raise CsrfError("the form's CSRF token is not valid")
    if owner[0] != user_id:
        raise CsrfError("the form's CSRF token belongs to another user")
    if owner[1] != session:
        raise CsrfError("the form's CSRF token belongs to an earlier sign-in; reload the page and decide again")


SELECTION_SALT = "rebalance-review-selection"
SELECTION_MAX_AGE = 3600   # a bulk confirmation is acted on within the hour, or counted again


def sign_selection(secret: str, user_id: str, session: str, decision: str, ids: list[str]) -> str:
    """The proposals a bulk confirmation counted, signed for this user, session and decision:
    the submit decides exactly these (compressed: thousands of ids fit a form field)."""
    return URLSafeTimedSerializer(secret, salt=SELECTION_SALT).dumps(
        {"u": user_id, "s": session, "d": decision, "ids": list(ids)})


def read_selection(secret: str, user_id: str, session: str, token: str) -> tuple[str, list[str]]:
    """(decision, ids) of a selection signed by ``sign_selection`` for this user and session."""
    try:
        payload = URLSafeTimedSerializer(secret, salt=SELECTION_SALT).loads(token, max_age=SELECTION_MAX_AGE)
    except SignatureExpired:
        raise CsrfError("the confirmation is more than an hour old; count the proposals again") from None
    except BadSignature:
        raise CsrfError("the confirmation is not valid") from None
    if not isinstance(payload, dict) or payload.get("u") != user_id or payload.get("s") != session:
        raise CsrfError("the confirmation belongs to another user or sign-in; count the proposals again")
    return str(payload["d"]), [str(i) for i in payload["ids"]]
