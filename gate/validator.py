"""The validator: may this code pass here, now?

:meth:`Validator.decide` answers every text with exactly one :class:`Decision`. The reasons
are checked in the GT1 order (malformed, unknown_key, bad_signature, revoked, not_yet_valid,
expired, wrong_zone, used, passback) and the first that applies wins. Nothing a ticket contains
can make it raise; only a failing gate database raises (:class:`~gate.errors.StoreError`),
and then no admission was recorded.

When a decision consumes (the default), the admission is committed durably before ``decide``
returns an accept, so a gate that loses power right after opening still knows the ticket was
used.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from gate.cose import Malformed
from gate.revocations import RevocationCheck
from gate.store import TicketUsage, UsageView
from gate.ticket import Claims, Ticket, parse_ticket
from gate.trust import TrustedKey, TrustStore


class Reason(StrEnum):
    """The GT1 reason codes, in the order they are checked."""

    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    REVOKED = "revoked"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    WRONG_ZONE = "wrong_zone"
    USED = "used"
    PASSBACK = "passback"
    OK = "ok"


@dataclass(frozen=True)
class Decision:
    """The answer to one presented text."""

    reason: Reason
    detail: str
    at: float
    kid: bytes | None = None
    claims: Claims | None = None
    key: TrustedKey | None = None
    admission_seq: int | None = None
    consumed: bool = False

    @property
    def accepted(self) -> bool:
        return self.reason is Reason.OK

    @property
    def decision(self) -> str:
        return "accept" if self.accepted else "reject"

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reason": self.reason.value,
            "detail": self.detail,
            "at": self.at,
            "kid": self.kid.hex() if self.kid is not None else None,
            "key": (
                {"name": self.key.name, "public_key": self.key.public_key.hex()}
                if self.key is not None
                else None
            ),
            "claims": self.claims.to_json() if self.claims is not None else None,
            "consumed": self.consumed,
            "admission_seq": self.admission_seq,
        }


@dataclass(frozen=True)
class Policy:
    """Where the gate stands and how strict it is."""

    gate_id: str = "check"
    zone: str | None = None
    passback_group: str = "check"
    passback_window: int = 600
    clock_skew: int = 30


class UsageLedger(Protocol):
    """The usage records a validator consults and writes (``gate.store.GateStore``)."""

    def usage_transaction(self): ...  # context manager yielding UsageTransaction

    def usage_snapshot(self): ...  # context manager yielding UsageView


def _when(seconds: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):  # far beyond any calendar a gate will see
        return f"Unix time {seconds}"


class Validator:
    """Decides on GT1 texts against a trust store, a revocation list and usage records.

    ``trust`` is a :class:`TrustStore` or a callable returning the current one (so a gate
    picks up a newly imported bundle). ``usage`` may be None for a stateless dry run, in
    which case ``used`` and ``passback`` are never reported.
    """

    def __init__(
        self,
        trust: TrustStore | Callable[[], TrustStore],
        revocations: RevocationCheck,
        usage: UsageLedger | None,
        policy: Policy,
    ) -> None:
        self._trust = trust if callable(trust) else (lambda: trust)
        self.revocations = revocations
        self.usage = usage
        self.policy = policy

    def decide(self, text: str, now: float | None = None, *, consume: bool = True) -> Decision:
        """Decide on one presented text. With ``consume`` False nothing is written."""
        now = time.time() if now is None else now
        try:
            ticket = parse_ticket(text)
        except Malformed as err:
            return Decision(Reason.MALFORMED, str(err), now)
        except Exception as err:  # hostile input must never escape as an exception
            return Decision(Reason.MALFORMED, f"unreadable input ({type(err).__name__})", now)
        return self.decide_ticket(ticket, now, consume=consume)

    def decide_ticket(self, ticket: Ticket, now: float, *, consume: bool = True) -> Decision:
        """Decide on a ticket :func:`~gate.ticket.parse_ticket` already parsed: every check
        after ``malformed``, in spec order. ``decide`` is ``parse_ticket`` plus this."""
        claims, kid = ticket.claims, ticket.kid
        candidates = self._trust().candidates(kid)
        if not candidates:
            return Decision(
                Reason.UNKNOWN_KEY, f"no trusted issuer key has kid {kid.hex()}", now, kid, claims
            )
        key = next((k for k in candidates if ticket.message.verify(k.verify_key)), None)
        if key is None:
            names = ", ".join(k.name for k in candidates)
            return Decision(
                Reason.BAD_SIGNATURE, f"signature does not verify with {names}", now, kid, claims
            )

        if self.usage is None:
            return self._judge(ticket, key, now, None, consume=False)
        if consume:
            # Everything from the revocation lookup to the admission runs in one write
            # transaction: a list imported meanwhile cannot slip between check and admission,
            # and the accept leaves this block only after COMMIT has reached the disk.
            with self.usage.usage_transaction() as tx:
                return self._judge(ticket, key, now, tx, consume=True)
        with self.usage.usage_snapshot() as view:
            return self._judge(ticket, key, now, view, consume=False)

    def _judge(
        self,
        ticket: Ticket,
        key: TrustedKey,
        now: float,
        usage: UsageView | None,
        *,
        consume: bool,
    ) -> Decision:
        """The checks after the signature, in spec order; records the admission if asked."""
        claims, kid = ticket.claims, ticket.kid

        def reject(reason: Reason, detail: str) -> Decision:
            return Decision(reason, detail, now, kid, claims, key)

        revoked = self.revocations.revoked_by(kid, claims.cti, key.public_key)
        if revoked == "ticket":
            return reject(Reason.REVOKED, f"ticket {claims.cti.hex()} is revoked")
        if revoked is not None:
            return reject(Reason.REVOKED, f"issuer key {key.name} is revoked")
        timing = self._timing(claims, key, now)
        if timing is not None:
            return reject(*timing)
        zone = self.policy.zone
        if zone is not None:
            if claims.zones is not None and zone not in claims.zones:
                return reject(
                    Reason.WRONG_ZONE, f"ticket zones {', '.join(claims.zones)}; gate zone {zone}"
                )
            if key.zones is not None and zone not in key.zones:
                return reject(
                    Reason.WRONG_ZONE, f"issuer key {key.name} is not trusted in zone {zone}"
                )
        if usage is None:
            return reject(Reason.OK, "valid (usage not checked)")
        group = self.policy.passback_group
        recorded = usage.usage(kid, claims.cti, group)
        refusal = self._usage_refusal(recorded, ticket, now)
        if refusal:
            return reject(*refusal)
        if not consume:
            return reject(Reason.OK, "valid (dry run)")
        seq = usage.record_admission(
            kid, claims.cti, recorded.recorded + 1, claims.product, now, self.policy.gate_id, group
        )
        return Decision(
            Reason.OK, "admitted", now, kid, claims, key, admission_seq=seq, consumed=True
        )

    def _timing(self, claims: Claims, key: TrustedKey, now: float) -> tuple[Reason, str] | None:
        skew = self.policy.clock_skew
        if claims.nbf is not None and now < claims.nbf - skew:
            return Reason.NOT_YET_VALID, f"ticket valid from {_when(claims.nbf)}"
        if key.not_before is not None and now < key.not_before - skew:
            return Reason.NOT_YET_VALID, f"issuer key {key.name} valid from {_when(key.not_before)}"
        if now >= claims.exp + skew:
            return Reason.EXPIRED, f"ticket expired {_when(claims.exp)}"
        if key.not_after is not None and now >= key.not_after + skew:
            return Reason.EXPIRED, f"issuer key {key.name} expired {_when(key.not_after)}"
        return None

    def _usage_refusal(
        self, usage: TicketUsage, ticket: Ticket, now: float
    ) -> tuple[Reason, str] | None:
        claims = ticket.claims
        if claims.product == "single":
            if usage.standing >= 1:
                return Reason.USED, "single ticket already used"
        elif claims.product == "multi":
            if usage.standing >= claims.uses:
                return Reason.USED, f"all {claims.uses} uses spent"
        elif self.policy.passback_window > 0:
            last = usage.last_in_group
            if last is not None and now - last < self.policy.passback_window:
                wait = int(self.policy.passback_window - (now - last)) + 1
                return (
                    Reason.PASSBACK,
                    f"pass entered group {self.policy.passback_group} {int(now - last)} s ago; "
                    f"valid again in {wait} s",
                )
        return None
