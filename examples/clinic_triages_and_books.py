"""A clinic's morning, with a clinician's token: take the oldest referral waiting for triage,
accept it, and book it into the soonest slot it may take.

    python examples/clinic_triages_and_books.py \
        --token "$(care-graph token --role clinician --subject dr-okafor)"
"""

from __future__ import annotations

import secrets

from client import client, operation, run


async def triage_and_book(url: str, token: str) -> None:
    """Each step one line: the referral, the decision, the booking."""
    async with client(url, token) as session:
        found = await session.execute(operation("SubmittedReferrals", first=10))
        submitted = found["referrals"]["nodes"]
        if not submitted:
            raise SystemExit("no referral is waiting for triage")
        for referral in submitted:  # the oldest that has a slot once accepted
            print(
                f"triaging {referral['ubrn']} ({referral['priority']},"
                f" {referral['waitingDays']} days)"
            )
            accepted = await session.execute(
                operation("TriageReferral", referral=referral["id"], decision="ACCEPT")
            )
            status = accepted["triageReferral"]["referral"]["status"]
            print(
                f"  accepted: {status}, breach date"
                f" {accepted['triageReferral']['referral']['breachDate']}"
            )
            slots = await session.execute(
                operation("CandidateSlots", referral=referral["id"], first=1)
            )
            nodes = slots["node"]["candidateSlots"]["nodes"]
            if not nodes:
                print("  no slot within reach yet: it waits on the list")
                continue
            booked = await session.execute(
                operation(
                    "BookAppointment",
                    referral=referral["id"],
                    slot=nodes[0]["id"],
                    key=f"clinic-{secrets.token_hex(8)}",
                )
            )
            appointment = booked["bookAppointment"]["appointment"]
            print(
                f"booked {appointment['id']} at {appointment['slot']['site']['name']},"
                f" {appointment['slot']['startsAt']}"
            )
            return
        raise SystemExit("no triaged referral had a slot within reach")


def main() -> None:
    run(__doc__, lambda options: triage_and_book(options.url, options.token))


if __name__ == "__main__":
    main()
