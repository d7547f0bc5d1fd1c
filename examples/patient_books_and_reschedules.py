"""A patient app's booking journey, with a patient's token: find my waiting referral, see the
slots near me, hold one, book it, move it to another, and cancel.

    python examples/patient_books_and_reschedules.py --token "$(care-graph token \
        --role patient --subject app-user-1 --patient NHS_NUMBER)"
"""

from __future__ import annotations

import secrets

from client import client, operation, run


async def journey(url: str, token: str) -> None:
    """Each step one line: what was asked, what came back."""
    async with client(url, token) as session:
        mine = await session.execute(operation("MyReferrals"))
        waiting = [r["id"] for r in mine["me"]["referrals"]["nodes"] if r["status"] == "ACCEPTED"]
        if not waiting:
            raise SystemExit("this patient has no referral waiting to be booked")
        for referral in waiting:  # the first with a slot to book and another to move to
            found = await session.execute(operation("CandidateSlots", referral=referral, first=3))
            slots = found["node"]["candidateSlots"]["nodes"]
            if len(slots) >= 2:
                break
        else:
            raise SystemExit("fewer than two slots near me for any referral: nothing to move to")
        print(f"my referral {referral} waits")
        for slot in slots:
            print(f"  can take {slot['id']} at {slot['site']['name']}, {slot['startsAt']}")
        held = await session.execute(operation("HoldSlot", referral=referral, slot=slots[0]["id"]))
        print(f"held {slots[0]['id']} until {held['holdSlot']['slot']['holdExpiresAt']}")
        key = f"app-{secrets.token_hex(8)}"
        booked = await session.execute(
            operation("BookAppointment", referral=referral, slot=slots[0]["id"], key=key)
        )
        appointment = booked["bookAppointment"]["appointment"]
        again = await session.execute(
            operation("BookAppointment", referral=referral, slot=slots[0]["id"], key=key)
        )
        assert again["bookAppointment"]["appointment"]["id"] == appointment["id"]
        print(f"booked {appointment['id']} (a retry with the same key gave the same booking)")
        moved = await session.execute(
            operation("RescheduleAppointment", appointment=appointment["id"], slot=slots[1]["id"])
        )
        appointment = moved["rescheduleAppointment"]["appointment"]
        print(f"moved to {appointment['slot']['id']} as {appointment['id']}")
        cancelled = await session.execute(
            operation("CancelAppointment", appointment=appointment["id"])
        )
        print(f"cancelled: {cancelled['cancelAppointment']['appointment']['status']}")


def main() -> None:
    run(__doc__, lambda options: journey(options.url, options.token))


if __name__ == "__main__":
    main()
