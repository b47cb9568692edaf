"""The public APIs web builds its pages on: intake for the company, router for the clerk, stats for the month's
scorecard the clerk's department reads.

Web holds no data of its own; whatever it shows, an integrator could show from the same calls.
"""

import logging
from typing import Any

import httpx

from libs import tracing

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """An API did not answer, or answered that it cannot serve now (5xx)."""


class Upstream:
    """Calls to intake, router and stats; a transport failure or a 5xx raises `Unavailable`."""

    def __init__(self, intake_url: str, router_url: str, stats_url: str, channel_key: str, timeout: float) -> None:
        self.intake_url = intake_url.rstrip("/")
        self.router_url = router_url.rstrip("/")
        self.stats_url = stats_url.rstrip("/")
        self._channel = {"X-Api-Key": channel_key}
        self.http = httpx.AsyncClient(timeout=timeout)

    async def close(self) -> None:
        """Release the connection pool."""
        await self.http.aclose()

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        # The page's trace goes on to intake and router: one trace from the portal to the departments.
        kwargs["headers"] = {**tracing.outgoing(), **kwargs.get("headers", {})}
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            log.warning("an API did not answer", extra={"error": type(exc).__name__})
            raise Unavailable from exc
        if response.status_code >= 500:
            log.warning("an API could not serve", extra={"status": response.status_code})
            raise Unavailable
        return response

    def _public(self, client: str) -> dict[str, str]:
        # Intake limits what a public form may ask per phone and per address of the person behind it; without
        # an address (no peer), intake counts web's own.
        return {**self._channel, "X-Client-Address": client[:64]} if client else dict(self._channel)

    # The company's side, on intake.
    async def submit(self, body: dict[str, Any], client: str) -> httpx.Response:
        """Submit an appeal as the web channel."""
        return await self._call("POST", f"{self.intake_url}/v1/appeals", json=body, headers=self._public(client))

    async def request_code(self, phone: str, language: str, client: str) -> httpx.Response:
        """Ask intake to send the phone a one-time code."""
        body = {"phone": phone, "language": language}
        return await self._call("POST", f"{self.intake_url}/v1/verifications", json=body, headers=self._public(client))

    async def check_code(self, phone: str, code: str, client: str) -> httpx.Response:
        """Whether the code is the phone's live one (it is used up if so)."""
        body = {"phone": phone, "code": code}
        return await self._call(
            "POST", f"{self.intake_url}/v1/verifications/check", json=body, headers=self._public(client)
        )

    async def resend_link(self, appeal_id: str, phone: str, language: str, client: str) -> httpx.Response:
        """Ask intake to send the appeal's link again to its phone."""
        return await self._call(
            "POST",
            f"{self.intake_url}/v1/appeals/{appeal_id}/link",
            json={"phone": phone, "language": language},
            headers=self._public(client),
        )

    async def appeal(self, appeal_id: str, token: str) -> httpx.Response:
        """The appeal its status token opens."""
        return await self._call("GET", f"{self.intake_url}/v1/appeals/{appeal_id}", headers={"X-Status-Token": token})

    async def answer(self, appeal_id: str, token: str, kind: str, body: dict[str, Any]) -> httpx.Response:
        """Give the information asked for (`info`) or feedback on the resolution (`feedback`)."""
        return await self._call(
            "POST", f"{self.intake_url}/v1/appeals/{appeal_id}/{kind}", json=body, headers={"X-Status-Token": token}
        )

    async def contact(self, appeal_id: str, token: str) -> httpx.Response:
        """The contact intake keeps for the appeal, or when it was erased."""
        return await self._call(
            "GET", f"{self.intake_url}/v1/appeals/{appeal_id}/contact", headers={"X-Status-Token": token}
        )

    async def correct_contact(self, appeal_id: str, token: str, body: dict[str, Any]) -> httpx.Response:
        """Replace the appeal's contact with the company's correction (409 once it was erased)."""
        return await self._call(
            "PUT", f"{self.intake_url}/v1/appeals/{appeal_id}/contact", json=body, headers={"X-Status-Token": token}
        )

    # The clerk's side, on router, with the department's key.
    async def worklist(self, key: str, department: str, status: str | None) -> httpx.Response:
        """The department's appeals, soonest due first."""
        # Soonest due lists only appeals with a running clock; a chosen status (resolved, closed) may have none.
        params: dict[str, Any] = {"sort": "due" if status is None else "submitted", "limit": 200}
        if status:
            params["status"] = status
        return await self._call(
            "GET", f"{self.router_url}/v1/departments/{department}/appeals", params=params, headers={"X-Api-Key": key}
        )

    async def department_appeal(self, key: str, appeal_id: str) -> httpx.Response:
        """One appeal the department leads or co-handles."""
        return await self._call("GET", f"{self.router_url}/v1/appeals/{appeal_id}", headers={"X-Api-Key": key})

    async def act(self, key: str, appeal_id: str, body: dict[str, Any], idempotency_key: str) -> httpx.Response:
        """A department's action; the idempotency key makes a resent form act once."""
        return await self._call(
            "POST",
            f"{self.router_url}/v1/appeals/{appeal_id}/actions",
            json=body,
            headers={"X-Api-Key": key, "Idempotency-Key": idempotency_key},
        )

    async def request_extension(
        self, key: str, appeal_id: str, *, until: str, reason: str, clerk: str, idempotency_key: str
    ) -> httpx.Response:
        """The lead asks the coordinating office for a later resolution due time (`until`, with its zone)."""
        body = {"action": "request_extension", "until": until, "reason": reason, "clerk": clerk}
        return await self.act(key, appeal_id, body, idempotency_key)

    async def request_transfer(
        self, key: str, appeal_id: str, *, target_department: str, reason: str, clerk: str, idempotency_key: str
    ) -> httpx.Response:
        """Past its send-back window, the lead asks the coordinating office to move the appeal where it suggests."""
        body = {"action": "request_transfer", "target_department": target_department, "reason": reason, "clerk": clerk}
        return await self.act(key, appeal_id, body, idempotency_key)

    async def contribute(
        self, key: str, appeal_id: str, *, note: str, attachments: list[str], clerk: str, idempotency_key: str
    ) -> httpx.Response:
        """A co-handler sends the lead its part of the answer: a note and https links."""
        body = {"action": "contribute", "note": note, "attachments": attachments, "clerk": clerk}
        return await self.act(key, appeal_id, body, idempotency_key)

    # The coordinating office's side, on router, with its department key; its decisions go through `act`.
    async def city_queue(
        self,
        key: str,
        state: str | None,
        filters: dict[str, str],
        *,
        limit: int,
        cursor: str | None = None,
        urge_level: int | None = None,
    ) -> httpx.Response:
        """A page of the open appeals across the city in a queue `state` (overdue, at risk, extension pending, sent
        back, transfer requested), or all of them; `urge_level`: overdue ones whose urging reached it. `cursor`: where
        the page starts, from the `Link` header of the page before (services/web/cursors.py)."""
        params: dict[str, Any] = {**filters, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        if state:
            params["state"] = state
        if urge_level:
            params["urge_level"] = urge_level
        return await self._call("GET", f"{self.router_url}/v1/appeals", params=params, headers={"X-Api-Key": key})

    # The office's return visits (回访), on router, with its department key.
    async def return_visits(self, key: str, state: str, *, limit: int, cursor: str | None = None) -> httpx.Response:
        """A page of the visit tasks in `state` (to_call, open, review, visited, answered, unreached), the earliest due
        first; `cursor` as for `city_queue`."""
        params: dict[str, Any] = {"state": state, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        return await self._call("GET", f"{self.router_url}/v1/return-visits", params=params, headers={"X-Api-Key": key})

    async def record_attempt(
        self, key: str, appeal_id: str, body: dict[str, Any], idempotency_key: str
    ) -> httpx.Response:
        """One attempt of a visit, or the office's review of a company's "not resolved"; a resent form records once."""
        return await self._call(
            "POST",
            f"{self.router_url}/v1/return-visits/{appeal_id}/attempts",
            json=body,
            headers={"X-Api-Key": key, "Idempotency-Key": idempotency_key},
        )

    # The city's scorecard, on stats, with the clerk's department key (web holds no key of its own that reads it).
    async def scorecard(self, key: str, month: str) -> httpx.Response:
        """The scorecard of `month` (YYYY-MM)."""
        return await self._call(
            "GET", f"{self.stats_url}/v1/stats/scorecard", params={"month": month}, headers={"X-Api-Key": key}
        )
