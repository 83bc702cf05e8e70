"""The validation demo: an office, an issuer and a gate in a temporary directory.

It creates an office root key and issuer keys, signs a trust bundle and a revocation list,
provisions a gate and imports both as a technician would, mints a mix of tickets, and runs
them through the gate's validator, printing each decision and a summary. It exits non-zero if
any decision differs from the expected one.

    python -m gate.demo [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import base45

from gate.config import load_config
from gate.state import GateState
from gate.ticket import PREFIX, Claims, mint_ticket
from gate.validator import Reason
from keys.documents import revocation_list, trust_bundle
from keys.keyfile import KeyPair, save_key

NOW = int(time.time())
DAY = 86400


def _cti(n: int) -> bytes:
    return n.to_bytes(4, "big") + b"demo-ticket!"


def _claims(n: int, product: str, **extra) -> Claims:
    base = {"iss": "metro-demo", "exp": NOW + 30 * DAY, "nbf": NOW - DAY, "iat": NOW - DAY}
    return Claims(cti=_cti(n), product=product, **(base | extra))


def _forge(text: str) -> str:
    """Flip one bit in the signature of a genuine ticket, as a forger would have to."""
    data = bytearray(base45.b45decode(text[len(PREFIX) :]))
    data[-5] ^= 0x01
    return PREFIX + base45.b45encode(bytes(data)).decode()


def scenario(metro: KeyPair, partner: KeyPair, rogue: KeyPair) -> list[tuple[str, str, Reason]]:
    """(label, text, expected reason) in presentation order."""
    single = mint_ticket(_claims(1, "single", zones=("A",)), metro.signing_key)
    multi = mint_ticket(_claims(2, "multi", uses=2, category="child"), metro.signing_key)
    day_pass = mint_ticket(_claims(3, "pass", category="staff"), metro.signing_key)
    partner_ok = mint_ticket(_claims(10, "single", iss="stadium-partner"), partner.signing_key)
    rogue_claims = _claims(11, "pass")
    metro_kid_rogue = mint_ticket(rogue_claims, rogue.signing_key)
    return [
        ("single ticket, zone A", single, Reason.OK),
        ("same single ticket again", single, Reason.USED),
        ("multi (2 uses), 1st", multi, Reason.OK),
        ("multi (2 uses), 2nd", multi, Reason.OK),
        ("multi (2 uses), 3rd", multi, Reason.USED),
        ("day pass", day_pass, Reason.OK),
        ("day pass again at once", day_pass, Reason.PASSBACK),
        ("partner issuer ticket", partner_ok, Reason.OK),
        (
            "expired yesterday",
            mint_ticket(_claims(4, "single", exp=NOW - DAY), metro.signing_key),
            Reason.EXPIRED,
        ),
        (
            "valid from next week",
            mint_ticket(_claims(5, "single", nbf=NOW + 7 * DAY), metro.signing_key),
            Reason.NOT_YET_VALID,
        ),
        (
            "zone B only",
            mint_ticket(_claims(6, "single", zones=("B",)), metro.signing_key),
            Reason.WRONG_ZONE,
        ),
        (
            "partner ticket for zone S only",
            mint_ticket(_claims(12, "single", zones=("S",)), partner.signing_key),
            Reason.WRONG_ZONE,
        ),
        (
            "revoked ticket",
            mint_ticket(_claims(7, "single"), metro.signing_key),
            Reason.REVOKED,
        ),
        ("forged (signature altered)", _forge(single), Reason.BAD_SIGNATURE),
        ("issuer not in the trust bundle", metro_kid_rogue, Reason.UNKNOWN_KEY),
        ("photocopy of a used single ticket", single, Reason.USED),
        ("a URL in a QR code", "https://example.com/ticket/123", Reason.MALFORMED),
        ("GT1 text with bad base45", "GT1:THIS IS NOT BASE45!!", Reason.MALFORMED),
        ("truncated ticket", single[:120], Reason.MALFORMED),
    ]


def provision(work: Path) -> tuple[Path, KeyPair, KeyPair, KeyPair]:
    """Make the office's and issuers' keys, the documents, and a provisioned gate."""
    print(f"== office: keys and signed documents in {work}")
    root, metro, partner, rogue = (KeyPair.generate() for _ in range(4))
    for name, pair in (("office-root", root), ("metro-issuer", metro)):
        save_key(pair, work / f"{name}.key")
        print(f"   {name:14} kid {pair.kid.hex()}")
    print(f"   partner key    kid {partner.kid.hex()} (raw public key, zone A only)")
    bundle = trust_bundle(
        [
            {"name": "metro", "public_key": metro.public_key},
            {"name": "stadium-partner", "public_key": partner.public_key, "zones": ["A"]},
        ],
        root,
        version=1,
    )
    (work / "trust-v1.cose").write_bytes(bundle)
    revoked = revocation_list(root, 1, tickets=[(metro.kid, _cti(7))])
    (work / "revocations-v1.cose").write_bytes(revoked)
    config = work / "gate.toml"
    config.write_text(
        "[gate]\n"
        'id = "demo-gate-01"\n'
        'zone = "A"\n'
        'state_dir = "state"\n'
        f'root_public_key = "{root.public_key.hex()}"\n'
        "clock_skew = 30\n\n"
        "[antipassback]\n"
        'group = "north-hall"\n'
        "window = 600\n"
    )
    return config, metro, partner, rogue


def run(work: Path) -> int:
    config_path, metro, partner, rogue = provision(work)
    config = load_config(config_path)
    with GateState(config) as state:
        print(f"== gate {config.gate_id}, zone {config.zone}: importing from the 'USB stick'")
        for name in ("trust-v1.cose", "revocations-v1.cose"):
            result = state.import_document(work / name)
            print(f"   {name:20} {result.kind}: {result.summary}")
        validator = state.validator()
        print("== presenting tickets")
        print(f"   {'#':>2}  {'decision':8} {'reason':13} {'ms':>6}  ticket")
        counts: Counter[str] = Counter()
        surprises = []
        for number, (label, text, expected) in enumerate(scenario(metro, partner, rogue), 1):
            started = time.perf_counter()
            decision = validator.decide(text)
            elapsed = (time.perf_counter() - started) * 1000
            counts[decision.reason.value] += 1
            mark = "" if decision.reason is expected else f"   << expected {expected.value}"
            if mark:
                surprises.append(label)
            print(
                f"   {number:2}  {decision.decision:8} {decision.reason.value:13} "
                f"{elapsed:6.2f}  {label}{mark}"
            )
        print("== summary")
        for reason in Reason:
            if counts[reason.value]:
                print(f"   {reason.value:13} {counts[reason.value]:3}")
        print(f"   {'total':13} {sum(counts.values()):3}  (accepted {counts['ok']})")
        print(f"   admissions recorded in {state.store.path}: {state.store.admission_count()}")
    if surprises:
        print(f"UNEXPECTED decisions: {', '.join(surprises)}", file=sys.stderr)
        return 1
    print("all decisions as expected")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it (default: temporary)")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=False)
        return run(args.keep)
    work = Path(tempfile.mkdtemp(prefix="gate-demo-"))
    try:
        return run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
