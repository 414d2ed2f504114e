"""Cross-site request forgery tokens for the review forms.

The Airflow UI signs users in with an HttpOnly cookie, which a browser also sends on a
request another site makes it send. Every form that changes something therefore carries a
token only our own page can know: the signed-in user's id, signed (itsdangerous) with the
api-server's secret key and stamped with the time. A token is valid for that user only and
for ``MAX_AGE`` seconds.
"""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALT = "rebalance-review-csrf"
MAX_AGE = 12 * 3600   # a morning's review session


class CsrfError(Exception):
    """The form's token is missing, forged, expired or someone else's."""


def issue(secret: str, user_id: str) -> str:
    return URLSafeTimedSerializer(secret, salt=SALT).dumps(user_id)


def verify(secret: str, user_id: str, token: str | None, max_age: int = MAX_AGE) -> None:
    if not token:
        raise CsrfError("the form has no CSRF token; reload the page and try again")
    try:
        owner = URLSafeTimedSerializer(secret, salt=SALT).loads(token, max_age=max_age)
    except SignatureExpired:
        raise CsrfError("the page is too old; reload it and decide again") from None
    except BadSignature:
        raise CsrfError("the form's CSRF token is not valid") from None
    if owner != user_id:
        raise CsrfError("the form's CSRF token belongs to another user")
